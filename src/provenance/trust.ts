/**
 * A rule's `verify` entries made ready to check signatures: public keys read and checked, trusted roots parsed
 * into the sigstore trust material, identities compiled. Done once per configuration (at validation too, so a
 * bad key file stops `config validate`, startup and reload with its path).
 */
import { createHash, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { errorMessage } from '../errors';
import { isRecord } from '../values';
import type { KeylessIdentity, VerifyEntry } from '../policies/image-rules';

export interface TrustedKey {
  /** `sha256:<hex>` of the key's DER SubjectPublicKeyInfo: how denials and audit records name a signer. */
  readonly fingerprint: string;
  readonly key: KeyObject;
}

/** Matches a certificate's issuer or subject: exactly, or by regular expression. */
export type IdentityMatcher = { readonly exact: string } | { readonly pattern: RegExp };

export type TrustEntry =
  | { readonly kind: 'keys'; readonly keys: readonly TrustedKey[] }
  | {
      readonly kind: 'keyless';
      /** The trusted root as read (JSON); made into the sigstore libraries' trust material when first used. */
      readonly root: Readonly<Record<string, unknown>>;
      readonly issuer: IdentityMatcher;
      readonly subject: IdentityMatcher;
      /** SCTs required in the certificate: one when the root names certificate transparency logs. */
      readonly ctlogThreshold: number;
    };

/** What a rule trusts. `fingerprint` changes whenever any of it does, so cached verifications do not outlive it. */
export interface RuleTrust {
  readonly entries: readonly TrustEntry[];
  readonly fingerprint: string;
}

export interface TrustProblem {
  /** Key path below the rule (`verify[0].keys[1]`). */
  readonly path: readonly (string | number)[];
  readonly message: string;
}

export type TrustLoad =
  { readonly ok: true; readonly trust: RuleTrust } | { readonly ok: false; readonly problems: readonly TrustProblem[] };

const CURVES = new Set(['prime256v1', 'secp384r1', 'secp521r1']);
const MIN_RSA_BITS = 2048;

/** Reads a PEM public key and refuses key types cosign does not sign with. */
export function readPublicKey(file: string): TrustedKey {
  const key = createPublicKey(readFileSync(file, 'utf8'));
  const details = key.asymmetricKeyDetails ?? {};
  const type = key.asymmetricKeyType;
  if (type === 'ec' && !CURVES.has(details.namedCurve ?? '')) {
    throw new Error(`ECDSA keys must be on P-256, P-384 or P-521, not ${details.namedCurve ?? 'an unnamed curve'}`);
  }
  if (type === 'rsa' && (details.modulusLength ?? 0) < MIN_RSA_BITS) throw new Error(`RSA keys must have at least ${MIN_RSA_BITS} bits`);
  if (type !== 'ec' && type !== 'rsa' && type !== 'ed25519') {
    throw new Error(`${type ?? 'this'} keys are not supported (ECDSA, RSA or Ed25519)`);
  }
  const der = key.export({ format: 'der', type: 'spki' });
  return { fingerprint: `sha256:${createHash('sha256').update(der).digest('hex')}`, key };
}

function list(value: unknown): Readonly<Record<string, unknown>>[] {
  return Array.isArray(value) ? value.filter(isRecord) : [];
}

function bytes(value: unknown, what: string): Buffer {
  if (typeof value !== 'string' || value === '') throw new Error(`${what} has no rawBytes`);
  return Buffer.from(value, 'base64');
}

/**
 * Reads a sigstore trusted root (trusted_root.json) and checks what verification will use of it: at least one CA
 * and one transparency log, every certificate and key parseable. (The sigstore libraries load it when a verification
 * first needs it, so a proxy that never verifies never loads them.)
 */
export function readTrustedRoot(file: string): {
  readonly root: Readonly<Record<string, unknown>>;
  readonly ctlogs: number;
  readonly text: string;
} {
  const text = readFileSync(file, 'utf8');
  let root: unknown;
  try {
    root = JSON.parse(text);
  } catch (err) {
    throw new Error(`not JSON: ${errorMessage(err)}`, { cause: err });
  }
  if (!isRecord(root)) throw new Error('not a trusted root: expected an object');
  const authorities = list(root['certificateAuthorities']);
  const tlogs = list(root['tlogs']);
  if (authorities.length === 0) throw new Error('names no certificate authority');
  if (tlogs.length === 0) throw new Error('names no transparency log');
  const certificates = [...authorities, ...list(root['timestampAuthorities'])].flatMap((a) =>
    list(isRecord(a['certChain']) ? a['certChain']['certificates'] : undefined),
  );
  certificates.forEach((c, i) => new X509Certificate(bytes(c['rawBytes'], `certificate ${i + 1}`)));
  const logs = [...tlogs, ...list(root['ctlogs'])];
  logs.forEach((log, i) => {
    const key = isRecord(log['publicKey']) ? log['publicKey'] : {};
    createPublicKey({ key: bytes(key['rawBytes'], `log key ${i + 1}`), format: 'der', type: 'spki' });
  });
  return { root, ctlogs: list(root['ctlogs']).length, text };
}

function matcher(exact: string | undefined, pattern: string | undefined): IdentityMatcher {
  return exact !== undefined ? { exact } : { pattern: new RegExp(pattern ?? '', 'u') };
}

export function identityMatches(matcher: IdentityMatcher, value: string | undefined): boolean {
  if (value === undefined) return false;
  return 'exact' in matcher ? matcher.exact === value : matcher.pattern.test(value);
}

function keyless(identity: KeylessIdentity, file: string): { entry: TrustEntry; fingerprint: string } {
  const root = readTrustedRoot(file);
  const entry: TrustEntry = {
    kind: 'keyless',
    root: root.root,
    issuer: matcher(identity.issuer, identity.issuerRegExp),
    subject: matcher(identity.subject, identity.subjectRegExp),
    ctlogThreshold: root.ctlogs > 0 ? 1 : 0,
  };
  const described = JSON.stringify([identity.issuer, identity.issuerRegExp, identity.subject, identity.subjectRegExp]);
  return { entry, fingerprint: `keyless ${described} ${createHash('sha256').update(root.text).digest('hex')}` };
}

/**
 * Loads a rule's `verify` entries; `resolve` turns a path as written into the file to read (relative to the
 * rules file). Every unreadable or invalid file is reported, with its path below the rule.
 */
export function loadTrust(entries: readonly VerifyEntry[], resolve: (path: string) => string = (p) => p): TrustLoad {
  const problems: TrustProblem[] = [];
  const loaded: TrustEntry[] = [];
  const parts: string[] = [];
  entries.forEach((entry, i) => {
    if (entry.keys !== undefined) {
      const keys: TrustedKey[] = [];
      entry.keys.forEach((file, k) => {
        try {
          keys.push(readPublicKey(resolve(file)));
        } catch (err) {
          problems.push({ path: ['verify', i, 'keys', k], message: `${file}: ${errorMessage(err)}` });
        }
      });
      loaded.push({ kind: 'keys', keys });
      parts.push(`keys ${keys.map((k) => k.fingerprint).join(',')}`);
    } else if (entry.keyless !== undefined) {
      try {
        const { entry: trust, fingerprint } = keyless(entry.keyless, resolve(entry.keyless.trustedRoot));
        loaded.push(trust);
        parts.push(fingerprint);
      } catch (err) {
        problems.push({ path: ['verify', i, 'keyless', 'trustedRoot'], message: `${entry.keyless.trustedRoot}: ${errorMessage(err)}` });
      }
    }
  });
  if (problems.length > 0) return { ok: false, problems };
  const fingerprint = createHash('sha256').update(parts.join('\n')).digest('hex').slice(0, 32);
  return { ok: true, trust: { entries: loaded, fingerprint } };
}
