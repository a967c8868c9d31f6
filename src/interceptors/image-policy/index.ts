/**
 * `image-policy`: an image allowlist enforced on the node itself, at every door an image comes through (doors.ts),
 * so it also holds for static pods and for images that are already present; rules may also require a signature.
 */
import type { Counter } from 'prom-client';
import { defineInterceptorType, type InterceptorDeps } from '../../chain/interceptor-types';
import type { CallContext, Interceptor, MethodInfo, Next } from '../../chain/types';
import { ProxyError, errorMessage } from '../../errors';
import { warmCodec, type DecodedMessage } from '../../messages/codec';
import { fieldAt } from '../../messages/field-at';
import { METRIC } from '../../metrics/names';
import { ensureCounter } from '../../metrics/registry';
import { policyDecisionKey, type PolicyDecisionRecord } from '../../policies/decision-key';
import { classifyImage, parseImageReference, type ImageReference } from '../../policies/image-reference';
import { decideAmong, type CompiledPolicy, type Decision } from '../../policies/image-rules';
import type { Scheduler } from '../../scheduler';
import { imagePolicySchema, type ImagePolicyConfig } from './config';
import { imageDoors, type DoorName } from './doors';
import { IMAGE_STATUS, ImageNameResolver } from './image-names';
import { imagesAtDoor, type ImageAtDoor } from './images-at-door';
import { loadConfiguredPolicy, policyLabel, readPolicyFile, type LoadedPolicy } from './policy-file';
import { PolicyFileWatcher } from './policy-watcher';
import { forwardConfirmedPull, REMOVE_IMAGE } from './pull-confirmation';
import { decisionOf, subjectOf, type Verdict } from './verdict';
import { VerifyStep } from './verify-step';

export const IMAGE_POLICY_TYPE = 'image-policy';

export { imagePolicySchema, type ImagePolicyConfig };

/** For tests: the time the rules file watcher debounces changes by. */
export interface ImagePolicyTestHooks {
  readonly scheduler?: Scheduler;
}

interface Judged {
  readonly verdict: Verdict;
  readonly ref?: ImageReference;
  readonly decision?: Decision;
}

export class ImagePolicyInterceptor implements Interceptor {
  readonly name: string;
  private current: LoadedPolicy;
  private lastText: string | undefined;
  private readonly label: string;
  private readonly resolver: ImageNameResolver;
  private readonly verifyStep: VerifyStep;
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
    this.current = { policy: loaded.policy, trust: loaded.trust };
    this.lastText = loaded.text;
    this.label = policyLabel(config, deps.name);
    this.resolver = new ImageNameResolver(config.cacheSize, config.imageStatusTimeoutMs);
    const { registry, log } = deps;
    this.verifyStep = new VerifyStep({ config, name: this.name, log, registry, resolver: this.resolver, label: this.label });
    // Counters survive config reloads: the new instance finds the old one's in the shared registry.
    this.decisions = ensureCounter(registry, {
      name: METRIC.imagePolicyDecisionsTotal,
      help: 'Image policy decisions, one per image, by door (pull, create or restore), action and mode',
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
    return this.current.policy;
  }

  /** Only the doors images come in through. */
  appliesTo(method: MethodInfo): boolean {
    return imageDoors.of(method) !== undefined;
  }

  async intercept(ctx: CallContext, next: Next): Promise<void> {
    const door = imageDoors.of(ctx.method);
    if (door === undefined) return next();
    // One policy for the whole call, even if the file is swapped meanwhile.
    const loaded = this.current;
    const request = await ctx.request();
    const namespace = fieldAt(request, door.namespacePath) ?? '';
    const images = imagesAtDoor(door, request);
    const verdicts =
      images.length === 0
        ? [this.nothingToCheck(ctx, loaded.policy)]
        : await Promise.all(images.map((image) => this.decideImage(ctx, door.door, image, namespace, loaded, request)));
    for (const verdict of verdicts) this.decisions.inc({ door: door.door, action: verdict.action, mode: verdict.mode });
    const deciding = verdicts.find((v) => v.action === 'deny') ?? verdicts[0];
    if (deciding === undefined) return next();
    const record: PolicyDecisionRecord = {
      ...decisionOf(deciding),
      mode: deciding.mode,
      ...(images.length > 1 ? { images: images.map(({ image, at }, i) => ({ image, at, ...decisionOf(verdicts[i]) })) } : {}),
    };
    ctx.state.set(policyDecisionKey, record);
    for (const [i, verdict] of verdicts.entries()) {
      if (verdict.action === 'allow') continue;
      const { image, rule, reason, code } = verdict;
      const fields = { door: door.door, at: images[i]?.at, image, namespace, rule, reason, code };
      this.deps.log.warn(verdict.mode === 'enforce' ? 'image denied by policy' : 'image policy would deny (audit mode)', fields);
    }
    if (deciding.action === 'deny' && deciding.mode === 'enforce') throw new ProxyError(deciding.code, deciding.message);
    // Only a registry door pins, and a registry door (a pull) names one image.
    if (deciding.pin === undefined) return next();
    return forwardConfirmedPull(ctx, next, deciding.pin, {
      upstream: this.deps.router.pick(ctx.backend),
      resolver: this.resolver,
      timeoutMs: this.config.imageStatusTimeoutMs,
      log: this.deps.log,
      label: this.label,
    });
  }

  /** A door call that names no image at all (a restore without container configs) cannot be decided. */
  private nothingToCheck(ctx: CallContext, policy: CompiledPolicy): Verdict {
    const reason = `${ctx.method.name} names no image to check`;
    const message = `${reason} (${this.label})`;
    return { action: 'deny', mode: policy.mode, code: 'POLICY_UNDECIDABLE', message, reason, image: '', rule: undefined };
  }

  /**
   * Decides one image at one door: by its name (the rules), then, when the deciding rule asks for a signature, by
   * its verification. Every image of every door is decided here, so every door verifies.
   */
  private async decideImage(
    ctx: CallContext,
    door: DoorName,
    found: ImageAtDoor,
    namespace: string,
    loaded: LoadedPolicy,
    request: DecodedMessage | undefined,
  ): Promise<Verdict> {
    const { verdict, ref, decision } = await this.judge(ctx, found, namespace, loaded.policy);
    if (verdict.action !== 'allow' || decision?.verify === undefined || decision.rule === undefined || ref === undefined) return verdict;
    const trust = loaded.trust.get(decision.rule.index);
    if (trust === undefined) throw new Error(`rule "${decision.rule.name}" has no trust loaded`);
    const upstream = this.deps.router.pick(ctx.backend);
    const { onUnverifiable } = decision.verify;
    return this.verifyStep.verify({ ctx, upstream, door, found, request, verdict, ref, rule: decision.rule.name, onUnverifiable, trust });
  }

  /** The decision on an image's name (an image ID's names asked of the runtime), and the name and decision behind it. */
  private async judge(ctx: CallContext, found: ImageAtDoor, namespace: string, policy: CompiledPolicy): Promise<Judged> {
    const { image } = found;
    const subject = (shown: string): string => subjectOf(found, shown);
    const spec = classifyImage(image);
    const mode = policy.mode;
    const deny = (code: Verdict['code'], shown: string, reason: string, message: string): Judged => ({
      verdict: { action: 'deny', mode, code, message, reason, image: shown, rule: undefined },
    });
    if (spec.kind === 'malformed') {
      const reason = `malformed image reference: ${spec.reason}`;
      return deny('POLICY_DENIED', image, reason, `${subject(`"${image}"`)} denied (${this.label}): ${reason}`);
    }
    if (spec.kind === 'reference') {
      const decision = policy.decide(spec.ref, namespace);
      return { verdict: this.verdictOf(subject(`"${spec.ref.normalized}"`), spec.ref, decision), ref: spec.ref, decision };
    }
    let names: readonly string[];
    try {
      names = await this.resolver.names(this.deps.router.pick(ctx.backend), spec.id, ctx.deadline);
    } catch (err) {
      this.lookupFailures.inc();
      const problem = `ImageStatus failed: ${errorMessage(err)}`;
      if (this.config.whenLookupFails === 'allow') {
        this.deps.log.warn('image policy could not decide; allowed (whenLookupFails: allow)', { image: spec.id, reason: problem });
        const reason = `undecidable, allowed by whenLookupFails: ${problem}`;
        return { verdict: { action: 'allow', mode, code: 'POLICY_UNDECIDABLE', message: '', reason, image: spec.id, rule: undefined } };
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
    return { verdict: this.verdictOf(subject(`"${spec.id}" (${decided.ref.normalized})`), decided.ref, decided.decision), ...decided };
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
    this.current = { policy: result.policy, trust: result.trust };
    this.reloads.inc({ result: 'applied' });
    this.deps.log.info('image policy reloaded', { file, rules: result.policy.ruleCount, mode: result.policy.mode });
  }

  async warmUp(): Promise<void> {
    this.resolver.warmUp();
    if (this.current.trust.size === 0) return;
    warmCodec([REMOVE_IMAGE.requestType, REMOVE_IMAGE.responseType, IMAGE_STATUS.requestType]);
    await this.verifyStep.warmUp();
  }

  async close(): Promise<void> {
    this.watcher?.close();
    await this.verifyStep.close();
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
  // Relative paths are relative to the config file; those inside a rules file, to the rules file.
  pathKeys: [
    'rulesFile',
    'authFile',
    'stateDir',
    'registries.*.caFile',
    'registries.*.authFile',
    'rules.*.verify.*.keys.*',
    'rules.*.verify.*.keyless.trustedRoot',
  ],
  // Every door, or an image could come in through the one left out.
  keepsMethods: Object.keys(imageDoors.byName),
  endsCalls: 'refuses calls naming a denied image',
  deprecatedKeys: { failOpen: 'use whenLookupFails: allow (failOpen: true) or deny (failOpen: false)' },
  create: (config, deps) => createImagePolicyInterceptor(config, deps),
});
