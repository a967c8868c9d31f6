/** What the image policy concluded about one image, and how it is recorded and shown. */
import type { ProxyErrorCode } from '../../errors';
import type { ImageDecisionRecord, VerificationRecord } from '../../policies/decision-key';
import type { PolicyAction, PolicyMode } from '../../policies/image-rules';
import type { ImageAtDoor } from './images-at-door';
import type { PullPin } from './pull-confirmation';

export interface Verdict {
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

export function decisionOf(verdict: Verdict | undefined): ImageDecisionRecord {
  if (verdict === undefined) throw new Error('an image without a verdict');
  const { action, rule, reason, verification } = verdict;
  return { action, rule, reason, ...(verification === undefined ? {} : { verification }) };
}

/** How a denial names the image: what it is for and, where a call can name several, where (`image volume "x" at config.mounts[0].image`). */
export function subjectOf(found: ImageAtDoor, shown: string): string {
  return `${found.noun} ${shown}${found.showAt ? ` at ${found.at}` : ''}`;
}
