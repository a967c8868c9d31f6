/**
 * What a signed payload claims about the image it signs, checked against the image being verified: cosign's
 * simple-signing payload (classic `.sig` signatures) and the in-toto statement in a sigstore bundle. Pure: the
 * payload has already been authenticated by its signature when these run; they only read its claims.
 */
import { parseImageReference } from './image-reference';

/** `critical.type` of a cosign simple-signing payload. */
export const SIMPLE_SIGNING_TYPE = 'cosign container image signature';
/** The in-toto predicate cosign's `sign` writes for an image signature (as opposed to an attestation). */
export const COSIGN_SIGN_PREDICATE = 'https://sigstore.dev/cosign/sign/v1';
/** DSSE payload type of an in-toto statement. */
export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
const IN_TOTO_STATEMENT_TYPES = new Set(['https://in-toto.io/Statement/v1', 'https://in-toto.io/Statement/v0.1']);

/** The image a signature must be about: its repository and manifest digest. */
export interface SignedTarget {
  readonly registry: string;
  readonly repository: string;
  /** `sha256:<hex>` */
  readonly digest: string;
}

/** Who signed an image: a public key (by fingerprint) or a certificate identity. */
export type Signer = { readonly key: string } | { readonly subject: string; readonly issuer: string };

export type ClaimCheck =
  | { readonly ok: true }
  /** The payload is about another image (`digest-mismatch`, `reference-mismatch`) or not an image signature at all. */
  | { readonly ok: false; readonly problem: 'digest-mismatch' | 'reference-mismatch' | 'not-a-signature'; readonly detail: string };

const mismatch = (problem: 'digest-mismatch' | 'reference-mismatch' | 'not-a-signature', detail: string): ClaimCheck => ({
  ok: false,
  problem,
  detail,
});

function record(value: unknown): Readonly<Record<string, unknown>> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** Go's JSON decoding, which cosign verifies with, matches keys without regard to case; so does this. */
function field(object: Readonly<Record<string, unknown>> | undefined, name: string): unknown {
  if (object === undefined) return undefined;
  if (Object.hasOwn(object, name)) return object[name];
  const wanted = name.toLowerCase();
  const key = Object.keys(object).find((k) => k.toLowerCase() === wanted);
  return key === undefined ? undefined : object[key];
}

/** A registry and a repository in it: what a signature, a pull or a recorded digest is about. */
export type Repository = Pick<SignedTarget, 'registry' | 'repository'>;

/** True when both name the same repository (registry hosts compare without regard to case). */
export function inRepository(ref: Repository, target: Repository): boolean {
  return ref.registry.toLowerCase() === target.registry.toLowerCase() && ref.repository === target.repository;
}

/** True when `reference` (a `docker-reference`) names the target's repository, however it is spelled. */
export function sameRepository(reference: string, target: Repository): boolean {
  const parsed = parseImageReference(reference);
  return parsed.ok && inRepository(parsed.ref, target);
}

/**
 * A simple-signing payload: `critical.type` is cosign's, `critical.image.docker-manifest-digest` is the digest
 * being verified and `critical.identity.docker-reference` names the image's repository.
 */
export function checkSimpleSigning(payload: string, target: SignedTarget): ClaimCheck {
  const critical = record(field(record(parseJson(payload)), 'critical'));
  if (critical === undefined) return mismatch('not-a-signature', 'the payload is not a simple-signing document');
  const type = field(critical, 'type');
  if (type !== SIMPLE_SIGNING_TYPE)
    return mismatch('not-a-signature', `the payload's type is ${JSON.stringify(type)}, not a cosign image signature`);
  const digest = field(record(field(critical, 'image')), 'docker-manifest-digest');
  if (digest !== target.digest) {
    return mismatch('digest-mismatch', `the signature is for ${typeof digest === 'string' ? digest : 'no digest'}, not ${target.digest}`);
  }
  const reference = field(record(field(critical, 'identity')), 'docker-reference');
  if (typeof reference !== 'string' || !sameRepository(reference, target)) {
    const named = typeof reference === 'string' ? reference : 'no repository';
    return mismatch('reference-mismatch', `the signature names ${named}, not ${target.registry}/${target.repository}`);
  }
  return { ok: true };
}

/**
 * An in-toto statement from a sigstore bundle: cosign's signature predicate, with a subject whose digest is the
 * one being verified. The bundle was found through the image's own repository; the statement names no repository.
 */
export function checkStatement(payloadType: string, payload: string, target: SignedTarget): ClaimCheck {
  if (payloadType !== IN_TOTO_PAYLOAD_TYPE) return mismatch('not-a-signature', `the bundle holds ${payloadType}, not an in-toto statement`);
  const statement = record(parseJson(payload));
  const type = statement?.['_type'];
  if (typeof type !== 'string' || !IN_TOTO_STATEMENT_TYPES.has(type))
    return mismatch('not-a-signature', 'the bundle holds no in-toto statement');
  const predicate = statement?.['predicateType'];
  if (predicate !== COSIGN_SIGN_PREDICATE) {
    return mismatch('not-a-signature', `the statement is an attestation (${String(predicate)}), not an image signature`);
  }
  const colon = target.digest.indexOf(':');
  const algorithm = target.digest.slice(0, colon);
  const hex = target.digest.slice(colon + 1);
  const subjects = Array.isArray(statement?.['subject']) ? (statement['subject'] as unknown[]) : [];
  const named: string[] = [];
  for (const subject of subjects) {
    const digests = record(record(subject)?.['digest']);
    const value = digests?.[algorithm];
    if (value === hex) return { ok: true };
    if (typeof value === 'string') named.push(`${algorithm}:${value}`);
  }
  return mismatch('digest-mismatch', `the signature is for ${named.length > 0 ? named.join(', ') : 'no digest'}, not ${target.digest}`);
}
