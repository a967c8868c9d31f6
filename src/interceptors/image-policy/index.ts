/**
 * `image-policy`: an image allowlist enforced on the node itself, at PullImage and at CreateContainer, so
 * it also holds for static pods and for images that are already present.
 */
import type { Counter } from 'prom-client';
import { defineInterceptorType, type InterceptorDeps } from '../../chain/interceptor-types';
import { ProxyError, errorMessage, type ProxyErrorCode } from '../../errors';
import type { Scheduler } from '../../scheduler';
import { ensureCounter } from '../../metrics/registry';
import { imageDoors, type ImageCheck } from './doors';
import type { CallContext, Interceptor, Next } from '../../chain/types';
import { policyDecisionKey, type PolicyDecisionRecord, type VerificationRecord } from '../../policies/decision-key';
import { IMAGE_STATUS, ImageNameResolver } from './image-names';
import { classifyImage, parseImageReference, type ImageReference } from '../../policies/image-reference';
import { decideAmong, type CompiledPolicy, type Decision, type PolicyAction, type PolicyMode } from '../../policies/image-rules';
import { loadConfiguredPolicy, policyLabel, readPolicyFile, type LoadedPolicy } from './policy-file';
import { PolicyFileWatcher } from './policy-watcher';
import { METRIC } from '../../metrics/names';
import { describeSigner, failureCode } from '../../provenance/outcome';
import { createProvenance } from './provenance-config';
import { imagePolicySchema, type ImagePolicyConfig } from './config';
import { ImageVerification, repositoryDigests, type DigestSource } from './verification';
import { forwardConfirmedPull, pullCredentials, REMOVE_IMAGE, type PullPin } from './pull-confirmation';
import { warmCodec, type DecodedMessage } from '../../messages/codec';
import { fieldAt } from '../../messages/field-at';

export const IMAGE_POLICY_TYPE = 'image-policy';

export { imagePolicySchema, type ImagePolicyConfig };

/** For tests: the time the rules file watcher debounces changes by. */
export interface ImagePolicyTestHooks {
  readonly scheduler?: Scheduler;
}

/** What the interceptor concluded about one image. */
interface Verdict {
  readonly action: PolicyAction;
  readonly mode: PolicyMode;
  readonly code: ProxyErrorCode;
  /** The denial as the user sees it (unused when allowed). */
  readonly message: string;
  /** Why, in short (for the audit record). */
  readonly reason: string;
  readonly image: string;
  readonly rule: string | undefined;
  readonly verification?: VerificationRecord;
  /** A pull of a tag whose digest was verified: the runtime must pull that digest. */
  readonly pin?: PullPin;
}

/** An image as a request names it: the name to decide on (the first non-empty path) and an image ID, if any path holds one. */
interface ImageAtDoor {
  readonly image: string;
  readonly id: string | undefined;
}

function imageOf(check: ImageCheck, request: DecodedMessage | undefined): ImageAtDoor {
  let image = '';
  let id: string | undefined;
  for (const path of check.imagePaths) {
    const value = fieldAt(request, path);
    if (value === undefined || value === '') continue;
    if (image === '') image = value;
    const spec = classifyImage(value);
    if (id === undefined && spec.kind === 'id') id = spec.id;
  }
  return { image, id };
}

interface Judged {
  readonly verdict: Verdict;
  readonly ref?: ImageReference;
  readonly decision?: Decision;
}

function pinOf(ref: ImageReference, digest: string): PullPin {
  return { name: ref.normalized, registry: ref.registry, repository: ref.repository, digest };
}

/** Doors where the image is about to come from its registry, so its digest is asked of the registry, not the node. */
const REGISTRY_DOORS: ReadonlySet<string> = new Set(['pull']);

export class ImagePolicyInterceptor implements Interceptor {
  readonly name: string;
  private current: LoadedPolicy;
  private lastText: string | undefined;
  private readonly label: string;
  private readonly resolver: ImageNameResolver;
  /** Signature verification; loaded when a rule asks for it (by the config or a later rules file). */
  private verification: Promise<ImageVerification> | undefined;
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
    return this.current.policy;
  }

  async intercept(ctx: CallContext, next: Next): Promise<void> {
    const check = imageDoors.of(ctx.method);
    if (check === undefined) return next();
    const { door } = check;
    // One policy for the whole call, even if the file is swapped meanwhile.
    const loaded = this.current;
    const request = await ctx.request();
    const namespace = fieldAt(request, check.namespacePath) ?? '';
    const verdict = await this.decideImage(ctx, door, imageOf(check, request), namespace, loaded, request);
    this.decisions.inc({ door, action: verdict.action, mode: verdict.mode });
    const record: PolicyDecisionRecord = {
      action: verdict.action,
      rule: verdict.rule,
      reason: verdict.reason,
      mode: verdict.mode,
      ...(verdict.verification === undefined ? {} : { verification: verdict.verification }),
    };
    ctx.state.set(policyDecisionKey, record);
    if (verdict.action === 'deny') {
      const fields = { door, image: verdict.image, namespace, rule: verdict.rule, reason: verdict.reason, code: verdict.code };
      if (verdict.mode === 'enforce') {
        this.deps.log.warn('image denied by policy', fields);
        throw new ProxyError(verdict.code, verdict.message);
      }
      this.deps.log.warn('image policy would deny (audit mode)', fields);
    }
    if (verdict.pin === undefined) return next();
    return forwardConfirmedPull(ctx, next, verdict.pin, {
      upstream: this.deps.router.pick(ctx.backend),
      resolver: this.resolver,
      timeoutMs: this.config.imageStatusTimeoutMs,
      log: this.deps.log,
      label: this.label,
    });
  }

  /**
   * Decides one image at one door: by its name (the rules), then, when the deciding rule asks for a signature, by
   * its verification. Every door goes through here, so every door verifies.
   */
  private async decideImage(
    ctx: CallContext,
    door: string,
    image: ImageAtDoor,
    namespace: string,
    loaded: LoadedPolicy,
    request: DecodedMessage | undefined,
  ): Promise<Verdict> {
    const judged = await this.judge(ctx, image.image, namespace, loaded.policy);
    const { verdict, ref, decision } = judged;
    if (verdict.action !== 'allow' || decision?.verify === undefined || decision.rule === undefined || ref === undefined) return verdict;
    const trust = loaded.trust.get(decision.rule.index);
    if (trust === undefined) throw new Error(`rule "${decision.rule.name}" has no trust loaded`);
    const upstream = this.deps.router.pick(ctx.backend);
    const fromRegistry = REGISTRY_DOORS.has(door);
    const source: DigestSource = fromRegistry
      ? { from: 'registry', credentials: pullCredentials(request, ref.registry) }
      : {
          from: 'node',
          names: async () => {
            if (image.id === undefined) return (await this.resolver.fresh(upstream, ref.normalized, ctx.deadline)).names;
            const cached = await this.resolver.names(upstream, image.id, ctx.deadline);
            // Pulled from this repository since its names were cached: ask again.
            if (repositoryDigests(cached, ref).length > 0) return cached;
            return this.resolver.refresh(upstream, image.id, ctx.deadline);
          },
        };
    const outcome = await (await this.verifier()).verify({ ctx, ref, rule: decision.rule.name, trust, source });
    const { result, digest } = outcome;
    const shown = image.id !== undefined && image.id !== image.image ? `"${image.image}" (${image.id})` : `"${ref.normalized}"`;
    if (result.ok) {
      const verification: VerificationRecord = {
        result: 'verified',
        digest,
        signer: result.signer,
        ...(outcome.cached ? { cached: true } : {}),
      };
      const reason = `${verdict.reason}; signed by ${describeSigner(result.signer)}`;
      const pin = fromRegistry && ref.digest === undefined && digest !== undefined ? pinOf(ref, digest) : undefined;
      return { ...verdict, reason, verification, ...(pin === undefined ? {} : { pin }) };
    }
    const verification: VerificationRecord = { result: 'unverified', digest, failure: result.failure };
    if (decision.verify.onUnverifiable === 'audit') {
      this.deps.log.warn('image signature not verified; allowed (onUnverifiable: audit)', {
        image: ref.normalized,
        digest,
        rule: decision.rule.name,
        failure: result.failure,
        reason: result.detail,
      });
      return { ...verdict, reason: `unverified, allowed by onUnverifiable: audit: ${result.detail}`, verification };
    }
    const reason = `not verified: ${result.detail}`;
    return {
      action: 'deny',
      mode: verdict.mode,
      code: failureCode[result.failure],
      message: `image ${shown} denied by rule "${decision.rule.name}" (${this.label}): ${reason}`,
      reason,
      image: ref.normalized,
      rule: decision.rule.name,
      verification,
    };
  }

  /** The verification service, made on first need (a policy without `verify` never touches the state directory). */
  private verifier(): Promise<ImageVerification> {
    this.verification ??= createProvenance(this.config, this.name, this.deps.log).then(
      (provenance) => new ImageVerification(provenance, this.deps.registry),
      (err: unknown) => {
        // Tried again by the next call that needs it (a credentials file back in place, say).
        this.verification = undefined;
        throw err;
      },
    );
    return this.verification;
  }

  /** The decision on an image's name (an image ID's names asked of the runtime), and the name and decision behind it. */
  private async judge(ctx: CallContext, image: string, namespace: string, policy: CompiledPolicy): Promise<Judged> {
    const spec = classifyImage(image);
    const mode = policy.mode;
    const deny = (code: Verdict['code'], shown: string, reason: string, message: string): Judged => ({
      verdict: { action: 'deny', mode, code, message, reason, image: shown, rule: undefined },
    });
    if (spec.kind === 'malformed') {
      const reason = `malformed image reference: ${spec.reason}`;
      return deny('POLICY_DENIED', image, reason, `image "${image}" denied (${this.label}): ${reason}`);
    }
    if (spec.kind === 'reference') {
      const decision = policy.decide(spec.ref, namespace);
      return { verdict: this.verdictOf(`"${spec.ref.normalized}"`, spec.ref, decision), ref: spec.ref, decision };
    }
    let names: readonly string[];
    try {
      names = await this.resolver.names(this.deps.router.pick(ctx.backend), spec.id, ctx.deadline);
    } catch (err) {
      this.lookupFailures.inc();
      const problem = `ImageStatus failed: ${errorMessage(err)}`;
      if (this.config.failOpen) {
        this.deps.log.warn('image policy could not decide; allowed (failOpen)', { image: spec.id, reason: problem });
        const reason = `undecidable, allowed by failOpen: ${problem}`;
        return { verdict: { action: 'allow', mode, code: 'POLICY_UNDECIDABLE', message: '', reason, image: spec.id, rule: undefined } };
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
    return { verdict: this.verdictOf(`"${spec.id}" (${found.ref.normalized})`, found.ref, found.decision), ...found };
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
    this.current = { policy: result.policy, trust: result.trust };
    this.reloads.inc({ result: 'applied' });
    this.deps.log.info('image policy reloaded', { file, rules: result.policy.ruleCount, mode: result.policy.mode });
  }

  async warmUp(): Promise<void> {
    this.resolver.warmUp();
    if (this.current.trust.size === 0) return;
    warmCodec([REMOVE_IMAGE.requestType, REMOVE_IMAGE.responseType, IMAGE_STATUS.requestType]);
    try {
      await this.verifier();
    } catch (err) {
      this.deps.log.error('signature verification could not be set up; calls that need it fail until it can', { error: errorMessage(err) });
    }
  }

  async close(): Promise<void> {
    this.watcher?.close();
    await (await this.verification)?.provenance.close();
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
  create: (config, deps) => createImagePolicyInterceptor(config, deps),
});
