/**
 * Where the image-policy interceptor leaves its decision on `ctx.state`, so interceptors earlier in the chain
 * (audit) can record it after `next()`. `Symbol.for` keeps the key identical across module copies.
 */
import type { Signer } from './signature-claims';

export const policyDecisionKey = Symbol.for('cri-proxy.image-policy.decision');

/** What the policy decided for one image. */
export interface ImageDecisionRecord {
  /** What the policy decided for the image. */
  readonly action: 'allow' | 'deny';
  /** Name of the rule that matched; undefined when the policy's default applied. */
  readonly rule: string | undefined;
  /** Short human-readable explanation (never contains credentials). */
  readonly reason: string;
  /** When the deciding rule asks for a signature: what its verification found. */
  readonly verification?: VerificationRecord | undefined;
}

export interface PolicyDecisionRecord extends ImageDecisionRecord {
  /** `enforce` applies a deny; `audit` only reports what would have been denied. */
  readonly mode: 'enforce' | 'audit';
  /**
   * When the call names several images (image volumes, a restore's containers): each one's decision, in request
   * order. The call's own fields above are those of the first denied image, else of the first image.
   */
  readonly images?: readonly (ImageDecisionRecord & { readonly image: string; readonly at: string })[];
}

export interface VerificationRecord {
  readonly result: 'verified' | 'unverified';
  /** The image's digest in its repository that was verified (or found unverifiable). */
  readonly digest?: string | undefined;
  /** Who signed it, when verified. */
  readonly signer?: Signer | undefined;
  /** Why not, when unverified (`no-signature`, `untrusted-signer`, …). */
  readonly failure?: string | undefined;
  /** Answered by the cache of verified digests. */
  readonly cached?: boolean | undefined;
}
