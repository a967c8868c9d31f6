/**
 * `image-policy`: an image allowlist enforced on the node itself, at PullImage and at CreateContainer, so
 * it also holds for static pods and for images that are already present.
 */
import type { Counter } from 'prom-client';
import { z } from 'zod';
import { MAX_INT32 } from '../../values';
import { defineInterceptorType, type InterceptorDeps } from '../../chain/interceptor-types';
import { ProxyError, errorMessage } from '../../errors';
import type { Scheduler } from '../../scheduler';
import { ensureCounter } from '../../metrics/registry';
import { imageDoors, type ImageCheck } from './doors';
import type { CallContext, Interceptor, MethodInfo, Next } from '../../chain/types';
import { policyDecisionKey, type PolicyDecisionRecord } from '../../policies/decision-key';
import { ImageNameResolver } from './image-names';
import { classifyImage, parseImageReference, type ImageReference } from '../../policies/image-reference';
import { decideAmong, type CompiledPolicy, type Decision, type PolicyAction, type PolicyMode } from '../../policies/image-rules';
import { loadConfiguredPolicy, policyLabel, readPolicyFile } from './policy-file';
import { policyActionSchema, policyModeSchema, rulesSchema } from '../../policies/policy-schema';
import { PolicyFileWatcher } from './policy-watcher';
import { METRIC } from '../../metrics/names';
import type { DecodedMessage } from '../../messages/codec';
import { fieldAt } from '../../messages/field-at';

export const IMAGE_POLICY_TYPE = 'image-policy';

export const imagePolicySchema = z
  .strictObject({
    mode: policyModeSchema.optional(),
    defaultAction: policyActionSchema.optional(),
    rules: rulesSchema.optional(),
    rulesFile: z.string().min(1, 'must not be empty').optional(),
    imageStatusTimeoutMs: z.int().min(1).max(MAX_INT32).default(2000),
    cacheSize: z.int().min(1).max(10_000_000).default(1000),
    failOpen: z.boolean().default(false),
  })
  .superRefine((config, ctx) => {
    if ((config.rules === undefined) === (config.rulesFile === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'set exactly one of "rules" (an inline policy) or "rulesFile"' });
      return;
    }
    // Reading the file here makes `config validate`, startup and SIGHUP all reject a bad policy.
    if (config.rulesFile === undefined) return;
    const result = readPolicyFile(config.rulesFile, config);
    if (result.ok) return;
    for (const problem of result.problems) {
      ctx.addIssue({ code: 'custom', path: ['rulesFile'], message: `${config.rulesFile}: ${problem}` });
    }
  });

export type ImagePolicyConfig = z.output<typeof imagePolicySchema>;

/** For tests: the time the rules file watcher debounces changes by. */
export interface ImagePolicyTestHooks {
  readonly scheduler?: Scheduler;
}

/** What the interceptor concluded about one call. */
interface Verdict {
  readonly action: PolicyAction;
  readonly mode: PolicyMode;
  readonly code: 'POLICY_DENIED' | 'POLICY_UNDECIDABLE';
  /** The denial as the user sees it (unused when allowed). */
  readonly message: string;
  /** Why, in short (for the audit record). */
  readonly reason: string;
  readonly image: string;
  readonly rule: string | undefined;
}

/** The image a call is about: the first non-empty of the method's image paths. */
function imageOf(check: ImageCheck, request: DecodedMessage | undefined): string {
  for (const path of check.imagePaths) {
    const value = fieldAt(request, path);
    if (value !== undefined && value !== '') return value;
  }
  return '';
}

export class ImagePolicyInterceptor implements Interceptor {
  readonly name: string;
  private current: CompiledPolicy;
  private lastText: string | undefined;
  private readonly label: string;
  private readonly resolver: ImageNameResolver;
  private readonly watcher: PolicyFileWatcher | undefined;
  private readonly decisions: Counter<'door' | 'action' | 'mode'>;
  private readonly reloads: Counter<'result'>;
  private readonly lookupFailures: Counter;

  constructor(
    private readonly config: ImagePolicyConfig,
    private readonly deps: InterceptorDeps,
    hooks: ImagePolicyTestHooks = {},
  ) {
    this.name = deps.name;
    const loaded = loadConfiguredPolicy(config);
    this.current = loaded.policy;
    this.lastText = loaded.text;
    this.label = policyLabel(config, deps.name);
    this.resolver = new ImageNameResolver(config.cacheSize, config.imageStatusTimeoutMs);
    const { registry } = deps;
    // Counters survive config reloads: the new instance finds the old one's in the shared registry.
    this.decisions = ensureCounter(registry, {
      name: METRIC.imagePolicyDecisionsTotal,
      help: 'Image policy decisions, by door (pull or create), action and mode',
      labelNames: ['door', 'action', 'mode'] as const,
    });
    this.reloads = ensureCounter(registry, {
      name: METRIC.imagePolicyReloadsTotal,
      help: 'Reloads of changed image policy files, by result: applied, or rejected (the previous policy stays)',
      labelNames: ['result'] as const,
    });
    for (const result of ['applied', 'rejected']) this.reloads.inc({ result }, 0);
    this.lookupFailures = ensureCounter(registry, {
      name: METRIC.imagePolicyLookupFailuresTotal,
      help: 'Image IDs whose names could not be looked up with ImageStatus',
      labelNames: [],
    });
    const file = config.rulesFile;
    this.watcher = file === undefined ? undefined : new PolicyFileWatcher(file, () => this.reloadFile(), deps.log, hooks.scheduler);
  }

  /** The policy new calls are decided by. */
  get policy(): CompiledPolicy {
    return this.current;
  }

  /** Only the doors images come in through. */
  appliesTo(method: MethodInfo): boolean {
    return imageDoors.of(method) !== undefined;
  }

  async intercept(ctx: CallContext, next: Next): Promise<void> {
    const check = imageDoors.of(ctx.method);
    if (check === undefined) return next();
    const { door } = check;
    // One policy for the whole call, even if the file is swapped meanwhile.
    const policy = this.current;
    const request = await ctx.request();
    const namespace = fieldAt(request, check.namespacePath) ?? '';
    const verdict = await this.judge(ctx, imageOf(check, request), namespace, policy);
    this.decisions.inc({ door, action: verdict.action, mode: verdict.mode });
    const record: PolicyDecisionRecord = { action: verdict.action, rule: verdict.rule, reason: verdict.reason, mode: verdict.mode };
    ctx.state.set(policyDecisionKey, record);
    if (verdict.action === 'deny') {
      const fields = { door, image: verdict.image, namespace, rule: verdict.rule, reason: verdict.reason };
      if (verdict.mode === 'enforce') {
        this.deps.log.warn('image denied by policy', fields);
        throw new ProxyError(verdict.code, verdict.message);
      }
      this.deps.log.warn('image policy would deny (audit mode)', fields);
    }
    return next();
  }

  private async judge(ctx: CallContext, image: string, namespace: string, policy: CompiledPolicy): Promise<Verdict> {
    const spec = classifyImage(image);
    const mode = policy.mode;
    const deny = (code: Verdict['code'], shown: string, reason: string, message: string): Verdict => ({
      action: 'deny',
      mode,
      code,
      message,
      reason,
      image: shown,
      rule: undefined,
    });
    if (spec.kind === 'malformed') {
      const reason = `malformed image reference: ${spec.reason}`;
      return deny('POLICY_DENIED', image, reason, `image "${image}" denied (${this.label}): ${reason}`);
    }
    if (spec.kind === 'reference') return this.verdictOf(`"${spec.ref.normalized}"`, spec.ref, policy.decide(spec.ref, namespace));
    let names: readonly string[];
    try {
      names = await this.resolver.names(this.deps.router.pick(ctx.backend), spec.id, ctx.deadline);
    } catch (err) {
      this.lookupFailures.inc();
      const problem = `ImageStatus failed: ${errorMessage(err)}`;
      if (this.config.failOpen) {
        this.deps.log.warn('image policy could not decide; allowed (failOpen)', { image: spec.id, reason: problem });
        const reason = `undecidable, allowed by failOpen: ${problem}`;
        return { action: 'allow', mode, code: 'POLICY_UNDECIDABLE', message: '', reason, image: spec.id, rule: undefined };
      }
      return deny('POLICY_UNDECIDABLE', spec.id, problem, `image "${spec.id}" cannot be checked (${this.label}): ${problem}`);
    }
    const refs = names.flatMap((n): ImageReference[] => {
      const parsed = parseImageReference(n);
      return parsed.ok ? [parsed.ref] : [];
    });
    const found = decideAmong(policy, refs, namespace);
    if (found === undefined) {
      const reason = 'the runtime knows no name for it to check';
      return deny('POLICY_UNDECIDABLE', spec.id, reason, `image "${spec.id}" denied (${this.label}): ${reason}`);
    }
    return this.verdictOf(`"${spec.id}" (${found.ref.normalized})`, found.ref, found.decision);
  }

  private verdictOf(subject: string, ref: ImageReference, decision: Decision): Verdict {
    const by = decision.rule === undefined ? 'the default action' : `rule "${decision.rule.name}"`;
    return {
      action: decision.action,
      mode: decision.mode,
      code: 'POLICY_DENIED',
      message: `image ${subject} denied by ${by} (${this.label}): ${decision.reason}`,
      reason: decision.reason,
      image: ref.normalized,
      rule: decision.rule?.name,
    };
  }

  /** Rereads the rules file and swaps the policy in one assignment; a bad file keeps the current one. */
  reloadFile(): void {
    const file = this.config.rulesFile;
    if (file === undefined) return;
    const result = readPolicyFile(file, this.config);
    // Events fire for every file in the directory and often twice per write; act on content changes only.
    if (result.text !== undefined && result.text === this.lastText) return;
    this.lastText = result.text;
    if (!result.ok) {
      this.reloads.inc({ result: 'rejected' });
      this.deps.log.error('image policy file rejected; keeping the previous policy', { file, problems: result.problems });
      return;
    }
    this.current = result.policy;
    this.reloads.inc({ result: 'applied' });
    this.deps.log.info('image policy reloaded', { file, rules: result.policy.ruleCount, mode: result.policy.mode });
  }

  warmUp(): Promise<void> {
    this.resolver.warmUp();
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.watcher?.close();
    return Promise.resolve();
  }
}

export function createImagePolicyInterceptor(
  config: ImagePolicyConfig,
  deps: InterceptorDeps,
  hooks: ImagePolicyTestHooks = {},
): ImagePolicyInterceptor {
  return new ImagePolicyInterceptor(config, deps, hooks);
}

export const imagePolicyInterceptorType = defineInterceptorType({
  name: IMAGE_POLICY_TYPE,
  schema: imagePolicySchema,
  pathKeys: ['rulesFile'],
  create: (config, deps) => createImagePolicyInterceptor(config, deps),
});
