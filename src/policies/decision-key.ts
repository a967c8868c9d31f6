/**
 * Where the image-policy interceptor leaves its decision on `ctx.state`, so interceptors earlier in the chain
 * (audit) can record it after `next()`. `Symbol.for` keeps the key identical across module copies.
 */
export const policyDecisionKey = Symbol.for('cri-proxy.image-policy.decision');

export interface PolicyDecisionRecord {
  /** What the policy decided for the call. */
  readonly action: 'allow' | 'deny';
  /** Name of the rule that matched; undefined when the policy's default applied. */
  readonly rule: string | undefined;
  /** Short human-readable explanation (never contains credentials). */
  readonly reason: string;
  /** `enforce` applies a deny; `audit` only reports what would have been denied. */
  readonly mode: 'enforce' | 'audit';
}
