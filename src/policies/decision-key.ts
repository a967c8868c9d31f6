/**
 * Where the image-policy interceptor leaves its decision on `ctx.state`, so interceptors earlier in the chain
 * (audit) can record it after `next()`. `Symbol.for` keeps the key identical across module copies.
 */
export const policyDecisionKey = Symbol.for('cri-proxy.image-policy.decision');

/** What the policy decided for one image. */
export interface ImageDecisionRecord {
  /** What the policy decided for the image. */
  readonly action: 'allow' | 'deny';
  /** Name of the rule that matched; undefined when the policy's default applied. */
  readonly rule: string | undefined;
  /** Short human-readable explanation (never contains credentials). */
  readonly reason: string;
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
