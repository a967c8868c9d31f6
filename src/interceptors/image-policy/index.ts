/**
 * `image-policy`: an image allowlist enforced on the node itself, at every door an image comes through (doors.ts),
 * so it also holds for static pods and for images that are already present.
 */
import type { Counter } from 'prom-client';
import { z } from 'zod';
import { isRecord, MAX_INT32 } from '../../values';
import { defineInterceptorType, type InterceptorDeps } from '../../chain/interceptor-types';
import { ProxyError, errorMessage } from '../../errors';
import type { Scheduler } from '../../scheduler';
import { ensureCounter } from '../../metrics/registry';
import { imageDoors } from './doors';
import { imagesAtDoor, type ImageAtDoor } from './images-at-door';
import type { CallContext, Interceptor, Next } from '../../chain/types';
import { policyDecisionKey, type ImageDecisionRecord, type PolicyDecisionRecord } from '../../policies/decision-key';
import { ImageNameResolver } from './image-names';
import { classifyImage, parseImageReference, type ImageReference } from '../../policies/image-reference';
import { decideAmong, type CompiledPolicy, type Decision, type PolicyAction, type PolicyMode } from '../../policies/image-rules';
import { DEFAULT_ACTION, DEFAULT_MODE, loadConfiguredPolicy, policyLabel, readPolicyFile, type PolicyConfig } from './policy-file';
import { policyActionSchema, policyModeSchema, rulesSchema } from '../../policies/policy-schema';
import { PolicyFileWatcher } from './policy-watcher';
import { METRIC } from '../../metrics/names';
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
    /** When an image ID's names cannot be looked up (the runtime fails or times out): deny the call, or allow it. */
    whenLookupFails: z.enum(['deny', 'allow']).optional(),
    /** The old name of whenLookupFails (true: allow); still read, with a warning (see deprecatedKeys). */
    failOpen: z.boolean().optional(),
  })
  .superRefine(
    (config, ctx) => {
      if (config.failOpen !== undefined && config.whenLookupFails !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['failOpen'], message: 'the old name of "whenLookupFails"; set only whenLookupFails' });
      }
      if ((config.rules === undefined) === (config.rulesFile === undefined)) {
        ctx.addIssue({ code: 'custom', message: 'set exactly one of "rules" (an inline policy) or "rulesFile"' });
        return;
      }
      // Reading the file here makes `config validate`, startup and SIGHUP all reject a bad policy.
      if (typeof config.rulesFile !== 'string') return;
      const result = readPolicyFile(config.rulesFile, validPolicySettings(config));
      if (result.ok) return;
      for (const problem of result.problems) {
        ctx.addIssue({ code: 'custom', path: ['rulesFile'], message: `${config.rulesFile}: ${problem}` });
      }
    },
    // Also when other keys are wrong, so that the file's problems are reported with theirs (the values may be invalid).
    { when: (payload) => isRecord(payload.value) },
  )
  // With inline rules the defaults are filled in here, so that `config print` shows them; a rules file sets its own.
  // The old failOpen key stays in the output, so that its use can be reported (see deprecatedKeys).
  .transform(({ whenLookupFails, ...config }) => {
    const lookup = { whenLookupFails: whenLookupFails ?? (config.failOpen === true ? ('allow' as const) : ('deny' as const)) };
    return config.rulesFile !== undefined
      ? { ...config, ...lookup }
      : { ...config, mode: config.mode ?? DEFAULT_MODE, defaultAction: config.defaultAction ?? DEFAULT_ACTION, ...lookup };
  });

/** `mode` and `defaultAction` of a config that may be invalid elsewhere, each where it is valid. */
function validPolicySettings(config: { mode?: unknown; defaultAction?: unknown }): PolicyConfig {
  const mode = policyModeSchema.safeParse(config.mode);
  const defaultAction = policyActionSchema.safeParse(config.defaultAction);
  return { mode: mode.success ? mode.data : undefined, defaultAction: defaultAction.success ? defaultAction.data : undefined };
}

export type ImagePolicyConfig = z.output<typeof imagePolicySchema>;

/** For tests: the time the rules file watcher debounces changes by. */
export interface ImagePolicyTestHooks {
  readonly scheduler?: Scheduler;
}

/** What the interceptor concluded about one image. */
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

function decisionOf(verdict: Verdict | undefined): ImageDecisionRecord {
  if (verdict === undefined) throw new Error('an image without a verdict');
  return { action: verdict.action, rule: verdict.rule, reason: verdict.reason };
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

  async intercept(ctx: CallContext, next: Next): Promise<void> {
    const door = imageDoors.of(ctx.method);
    if (door === undefined) return next();
    // One policy for the whole call, even if the file is swapped meanwhile.
    const policy = this.current;
    const request = await ctx.request();
    const namespace = fieldAt(request, door.namespacePath) ?? '';
    const images = imagesAtDoor(door, request);
    const verdicts =
      images.length === 0
        ? [this.nothingToCheck(ctx, policy)]
        : await Promise.all(images.map((image) => this.decideImage(ctx, image, namespace, policy)));
    for (const verdict of verdicts) this.decisions.inc({ door: door.door, action: verdict.action, mode: verdict.mode });
    const deciding = verdicts.find((v) => v.action === 'deny') ?? verdicts[0];
    if (deciding === undefined) return next();
    const record: PolicyDecisionRecord = {
      action: deciding.action,
      rule: deciding.rule,
      reason: deciding.reason,
      mode: deciding.mode,
      ...(images.length > 1 ? { images: images.map(({ image, at }, i) => ({ image, at, ...decisionOf(verdicts[i]) })) } : {}),
    };
    ctx.state.set(policyDecisionKey, record);
    for (const [i, verdict] of verdicts.entries()) {
      if (verdict.action === 'allow') continue;
      const fields = { door: door.door, at: images[i]?.at, image: verdict.image, namespace, rule: verdict.rule, reason: verdict.reason };
      this.deps.log.warn(verdict.mode === 'enforce' ? 'image denied by policy' : 'image policy would deny (audit mode)', fields);
    }
    if (deciding.action === 'deny' && deciding.mode === 'enforce') throw new ProxyError(deciding.code, deciding.message);
    return next();
  }

  /** A door call that names no image at all (a restore without container configs) cannot be decided. */
  private nothingToCheck(ctx: CallContext, policy: CompiledPolicy): Verdict {
    const reason = `${ctx.method.name} names no image to check`;
    const message = `${reason} (${this.label})`;
    return { action: 'deny', mode: policy.mode, code: 'POLICY_UNDECIDABLE', message, reason, image: '', rule: undefined };
  }

  /** Decides one image at one door: every image of every door is decided here. */
  private async decideImage(ctx: CallContext, found: ImageAtDoor, namespace: string, policy: CompiledPolicy): Promise<Verdict> {
    const { image } = found;
    const where = found.showAt ? ` at ${found.at}` : '';
    const subject = (shown: string): string => `${found.noun} ${shown}${where}`;
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
      return deny('POLICY_DENIED', image, reason, `${subject(`"${image}"`)} denied (${this.label}): ${reason}`);
    }
    if (spec.kind === 'reference') return this.verdictOf(subject(`"${spec.ref.normalized}"`), spec.ref, policy.decide(spec.ref, namespace));
    let names: readonly string[];
    try {
      names = await this.resolver.names(this.deps.router.pick(ctx.backend), spec.id, ctx.deadline);
    } catch (err) {
      this.lookupFailures.inc();
      const problem = `ImageStatus failed: ${errorMessage(err)}`;
      if (this.config.whenLookupFails === 'allow') {
        this.deps.log.warn('image policy could not decide; allowed (whenLookupFails: allow)', { image: spec.id, reason: problem });
        const reason = `undecidable, allowed by whenLookupFails: ${problem}`;
        return { action: 'allow', mode, code: 'POLICY_UNDECIDABLE', message: '', reason, image: spec.id, rule: undefined };
      }
      return deny('POLICY_UNDECIDABLE', spec.id, problem, `${subject(`"${spec.id}"`)} cannot be checked (${this.label}): ${problem}`);
    }
    const refs = names.flatMap((n): ImageReference[] => {
      const parsed = parseImageReference(n);
      return parsed.ok ? [parsed.ref] : [];
    });
    const decided = decideAmong(policy, refs, namespace);
    if (decided === undefined) {
      const reason = 'the runtime knows no name for it to check';
      return deny('POLICY_UNDECIDABLE', spec.id, reason, `${subject(`"${spec.id}"`)} denied (${this.label}): ${reason}`);
    }
    return this.verdictOf(subject(`"${spec.id}" (${decided.ref.normalized})`), decided.ref, decided.decision);
  }

  private verdictOf(subject: string, ref: ImageReference, decision: Decision): Verdict {
    const by = decision.rule === undefined ? 'the default action' : `rule "${decision.rule.name}"`;
    return {
      action: decision.action,
      mode: decision.mode,
      code: 'POLICY_DENIED',
      message: `${subject} denied by ${by} (${this.label}): ${decision.reason}`,
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
  // Every door, or an image could come in through the one left out.
  keepsMethods: Object.keys(imageDoors.byName),
  endsCalls: 'refuses calls naming a denied image',
  deprecatedKeys: { failOpen: 'use whenLookupFails: allow (failOpen: true) or deny (failOpen: false)' },
  create: (config, deps) => createImagePolicyInterceptor(config, deps),
});
