/**
 * The image policy's verification step: an image its name allowed, under a rule that asks for a signature, is
 * verified (its digest asked of the registry at a pull, of the runtime at the other doors), and the verdict
 * becomes the verification's: allowed and signed by whom, allowed unverified (`onUnverifiable: audit`), or denied.
 */
import type { Registry } from 'prom-client';
import type { Backend } from '../../chain/backends';
import type { CallContext } from '../../chain/types';
import { errorMessage } from '../../errors';
import type { Logger } from '../../log';
import type { DecodedMessage } from '../../messages/codec';
import type { VerificationRecord } from '../../policies/decision-key';
import type { ImageReference } from '../../policies/image-reference';
import type { UnverifiableAction } from '../../policies/image-rules';
import { describeSigner, failureCode } from '../../provenance/outcome';
import type { RuleTrust } from '../../provenance/trust';
import type { ImagePolicyConfig } from './config';
import type { DoorName } from './doors';
import type { ImageNameResolver } from './image-names';
import type { ImageAtDoor } from './images-at-door';
import { createProvenance } from './provenance-config';
import { pullCredentials, type PullPin } from './pull-confirmation';
import { subjectOf, type Verdict } from './verdict';
import { ImageVerification, repositoryDigests, type DigestSource } from './verification';

/** Doors where the image is about to come from its registry, so its digest is asked of the registry, not the node. */
const REGISTRY_DOORS: ReadonlySet<DoorName> = new Set(['pull']);

export interface VerifyStepDeps {
  readonly config: ImagePolicyConfig;
  /** The interceptor's name: its cache of verified digests is its own. */
  readonly name: string;
  readonly log: Logger;
  readonly registry: Registry;
  readonly resolver: ImageNameResolver;
  /** How denials name the policy. */
  readonly label: string;
}

/** One image allowed by name under a rule with `verify`. */
export interface ToVerify {
  readonly ctx: CallContext;
  /** The backend the call goes to: the node's runtime, for an image on the node. */
  readonly upstream: Backend;
  readonly door: DoorName;
  readonly found: ImageAtDoor;
  readonly request: DecodedMessage | undefined;
  /** The verdict on its name (an allow). */
  readonly verdict: Verdict;
  /** The name it was decided by. */
  readonly ref: ImageReference;
  readonly rule: string;
  readonly onUnverifiable: UnverifiableAction;
  readonly trust: RuleTrust;
}

export class VerifyStep {
  /** Loaded when a rule asks for it (by the config or a later rules file). */
  private verification: Promise<ImageVerification> | undefined;

  constructor(private readonly deps: VerifyStepDeps) {}

  /** The verdict once the image's signature was checked as the rule asks. */
  async verify(image: ToVerify): Promise<Verdict> {
    const { ctx, upstream, found, ref, rule, verdict } = image;
    const fromRegistry = REGISTRY_DOORS.has(image.door);
    const source = fromRegistry
      ? ({ from: 'registry', credentials: pullCredentials(image.request, ref.registry) } as const)
      : nodeDigests(this.deps.resolver, upstream, ctx, found, ref);
    const outcome = await (await this.verifier()).verify({ ctx, ref, rule, trust: image.trust, source });
    const { result, digest } = outcome;
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
    if (image.onUnverifiable === 'audit') {
      this.deps.log.warn('image signature not verified; allowed (onUnverifiable: audit)', {
        image: ref.normalized,
        at: found.at,
        digest,
        rule,
        failure: result.failure,
        reason: result.detail,
      });
      return { ...verdict, reason: `unverified, allowed by onUnverifiable: audit: ${result.detail}`, verification };
    }
    const reason = `not verified: ${result.detail}`;
    const { id } = found;
    // As the request names it, with the ID or the name it was decided by beside it.
    const shown =
      id === undefined ? `"${ref.normalized}"` : id === found.image ? `"${id}" (${ref.normalized})` : `"${found.image}" (${id})`;
    return {
      action: 'deny',
      mode: verdict.mode,
      code: failureCode[result.failure],
      message: `${subjectOf(found, shown)} denied by rule "${rule}" (${this.deps.label}): ${reason}`,
      reason,
      image: ref.normalized,
      rule,
      verification,
    };
  }

  /** Sets up verification ahead of the first call that needs it; a failure is logged, and tried again by that call. */
  async warmUp(): Promise<void> {
    try {
      await this.verifier();
    } catch (err) {
      this.deps.log.error('signature verification could not be set up; calls that need it fail until it can', { error: errorMessage(err) });
    }
  }

  async close(): Promise<void> {
    await (await this.verification)?.provenance.close();
  }

  /** The verification service, made on first need (a policy without `verify` never touches the state directory). */
  private verifier(): Promise<ImageVerification> {
    const { config, name, log, registry } = this.deps;
    this.verification ??= createProvenance(config, name, log).then(
      (provenance) => new ImageVerification(provenance, registry),
      (err: unknown) => {
        // Tried again by the next call that needs it (a credentials file back in place, say).
        this.verification = undefined;
        throw err;
      },
    );
    return this.verification;
  }
}

/** The digests the runtime records for an image on the node (by its ID when the request named one). */
function nodeDigests(
  resolver: ImageNameResolver,
  upstream: Backend,
  ctx: CallContext,
  found: ImageAtDoor,
  ref: ImageReference,
): DigestSource {
  const { id } = found;
  return {
    from: 'node',
    names: async () => {
      if (id === undefined) return (await resolver.fresh(upstream, ref.normalized, ctx.deadline)).names;
      const cached = await resolver.names(upstream, id, ctx.deadline);
      // Pulled from this repository since its names were cached: ask again.
      if (repositoryDigests(cached, ref).length > 0) return cached;
      return resolver.refresh(upstream, id, ctx.deadline);
    },
  };
}

function pinOf(ref: ImageReference, digest: string): PullPin {
  return { name: ref.normalized, registry: ref.registry, repository: ref.repository, digest };
}
