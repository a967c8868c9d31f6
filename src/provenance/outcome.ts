/** What a signature verification concludes, and the stable error code of each way it can fail. */
import type { ProxyErrorCode } from '../errors';
import type { Signer } from '../policies/signature-claims';

export type { Signer } from '../policies/signature-claims';

/**
 * Why an image could not be verified, from the least to the most advanced failure: when several signatures fail
 * for different reasons, the one that got furthest is reported (a trusted signature for another digest says more
 * than an unsigned one).
 */
export const VERIFY_FAILURES = [
  'digest-unknown',
  'registry-unavailable',
  'no-signature',
  'untrusted-signer',
  'invalid-signature',
  'identity-mismatch',
  'reference-mismatch',
  'digest-mismatch',
] as const;
export type VerifyFailure = (typeof VERIFY_FAILURES)[number];

/** The error code a denial for each failure carries (docs/image-provenance.md explains each). */
export const failureCode: Readonly<Record<VerifyFailure, ProxyErrorCode>> = {
  // The runtime knows no digest of the image in the repository its name names: nothing to verify.
  'digest-unknown': 'POLICY_UNDECIDABLE',
  'registry-unavailable': 'REGISTRY_UNAVAILABLE',
  'no-signature': 'SIGNATURE_MISSING',
  'untrusted-signer': 'SIGNATURE_UNTRUSTED',
  'invalid-signature': 'SIGNATURE_INVALID',
  'identity-mismatch': 'SIGNER_IDENTITY_MISMATCH',
  'reference-mismatch': 'SIGNED_REFERENCE_MISMATCH',
  'digest-mismatch': 'SIGNED_DIGEST_MISMATCH',
};

export interface Verified {
  readonly ok: true;
  readonly signer: Signer;
  /** The digest the signature is for: the image's own, or its platform manifest's when only that is signed. */
  readonly signedDigest: string;
  readonly format: 'cosign' | 'bundle';
}

export interface Unverified {
  readonly ok: false;
  readonly failure: VerifyFailure;
  /** Why, for the denial message and the logs (never holds credentials). */
  readonly detail: string;
}

export type VerificationResult = Verified | Unverified;

export function unverified(failure: VerifyFailure, detail: string): Unverified {
  return { ok: false, failure, detail };
}

/** The more advanced of two failures (ties keep the first). */
export function furthest(a: Unverified | undefined, b: Unverified): Unverified {
  if (a === undefined) return b;
  return VERIFY_FAILURES.indexOf(b.failure) > VERIFY_FAILURES.indexOf(a.failure) ? b : a;
}

/** The signer as one line: `key sha256:…` or `<subject> (issuer <issuer>)`. */
export function describeSigner(signer: Signer): string {
  return 'key' in signer ? `key ${signer.key}` : `${signer.subject} (issuer ${signer.issuer})`;
}
