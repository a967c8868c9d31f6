/**
 * Checks one found signature against one `verify` entry, for one image. Key signatures of cosign's classic layout
 * are checked with node:crypto; everything involving certificates, transparency logs and bundles with the sigstore
 * libraries (a classic keyless signature is put into the bundle form they verify: its certificate, and its Rekor
 * bundle annotation as the transparency log entry with its signed entry timestamp).
 */
import { createHash, verify as verifySignature, type KeyObject } from 'node:crypto';
import { BUNDLE_V01_MEDIA_TYPE, bundleFromJSON, type Bundle } from '@sigstore/bundle';
import { pem } from '@sigstore/core';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import {
  PolicyError,
  VerificationError,
  Verifier,
  toSignedEntity,
  toTrustMaterial,
  type SignedEntity,
  type TrustMaterial,
} from '@sigstore/verify';
import { errorMessage } from '../errors';
import { checkSimpleSigning, checkStatement, type ClaimCheck, type SignedTarget } from '../policies/signature-claims';
import type { BundleSignature, CosignSignature, FoundSignature } from './discovery';
import { unverified, type Signer, type Unverified, type VerificationResult } from './outcome';
import { identityMatches, type TrustEntry, type TrustedKey } from './trust';

type KeylessTrust = Extract<TrustEntry, { kind: 'keyless' }>;

const materials = new WeakMap<KeylessTrust, TrustMaterial>();

/** The sigstore trust material of a keyless entry's trusted root, made once per loaded policy. */
function materialOf(trust: KeylessTrust): TrustMaterial {
  let material = materials.get(trust);
  if (material === undefined) {
    material = toTrustMaterial(TrustedRoot.fromJSON(trust.root));
    materials.set(trust, material);
  }
  return material;
}

/** Hashes a key type signs with: the curve's own first (cosign's default), then SHA-256 (its historical one). */
function hashesFor(key: KeyObject): (string | null)[] {
  switch (key.asymmetricKeyType) {
    case 'ed25519':
      return [null];
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (curve === 'secp384r1') return ['sha384', 'sha256'];
      if (curve === 'secp521r1') return ['sha512', 'sha256'];
      return ['sha256'];
    }
    default:
      return ['sha256'];
  }
}

/** The trusted key that made `signature` over `data`, if any. */
function signingKey(keys: readonly TrustedKey[], data: Buffer, signature: Buffer): TrustedKey | undefined {
  return keys.find((k) =>
    hashesFor(k.key).some((hash) => {
      try {
        return verifySignature(hash, data, k.key, signature);
      } catch {
        return false;
      }
    }),
  );
}

/** A claims check as a result: `undefined` when the payload is no image signature at all (it is then ignored). */
function afterClaims(claims: ClaimCheck, verified: VerificationResult): VerificationResult | undefined {
  if (claims.ok) return verified;
  if (claims.problem === 'not-a-signature') return undefined;
  return unverified(claims.problem, claims.detail);
}

/** What went wrong in the sigstore verifier, as a failure; `keyed`: the signer was named by a key, not a certificate. */
function failureOf(err: unknown, keyed: boolean): Unverified {
  if (err instanceof VerificationError) {
    const cause = err.cause instanceof Error ? err.cause.message : '';
    switch (err.code) {
      case 'CERTIFICATE_ERROR':
        if (/path found/.test(cause) || /path found/.test(err.message)) {
          return unverified('untrusted-signer', 'the certificate is not issued by a certificate authority of the trusted root');
        }
        if (/expired/.test(err.message) || /expired/.test(cause)) {
          return unverified('invalid-signature', 'the certificate was not valid when the image was signed (expired or not yet valid)');
        }
        return unverified('invalid-signature', `certificate: ${err.message}${cause === '' ? '' : `: ${cause}`}`);
      case 'PUBLIC_KEY_ERROR':
        return unverified('untrusted-signer', 'the signature does not verify with any trusted key');
      case 'SIGNATURE_ERROR':
        return keyed
          ? unverified('untrusted-signer', 'the signature does not verify with any trusted key')
          : unverified('invalid-signature', 'the signature does not match the signed content (altered)');
      default:
        return unverified('invalid-signature', `${err.message.replace(/_/g, ' ')}${cause === '' ? '' : `: ${cause}`}`);
    }
  }
  if (err instanceof PolicyError) return unverified('identity-mismatch', err.message);
  return unverified('invalid-signature', errorMessage(err));
}

/** Whether a certificate of one of the root's CAs signed the leaf: a stranger's certificate is untrusted, not invalid. */
function issuedByTrustedCa(entity: SignedEntity, material: TrustMaterial): boolean {
  if (entity.key.$case !== 'certificate') return false;
  const leaf = entity.key.certificate;
  return material.certificateAuthorities.some((ca) => ca.certChain.some((issuer) => leaf.verify(issuer)));
}

function keylessSigner(entity: SignedEntity, trust: KeylessTrust): Signer | Unverified {
  const material = materialOf(trust);
  if (!issuedByTrustedCa(entity, material)) {
    return unverified('untrusted-signer', 'the certificate is not issued by a certificate authority of the trusted root');
  }
  let identity;
  try {
    const verifier = new Verifier(material, { tlogThreshold: 1, ctlogThreshold: trust.ctlogThreshold, timestampThreshold: 1 });
    identity = verifier.verify(entity).identity;
  } catch (err) {
    return failureOf(err, false);
  }
  const subject = identity?.subjectAlternativeName;
  const issuer = identity?.extensions?.issuer;
  if (!identityMatches(trust.issuer, issuer) || !identityMatches(trust.subject, subject)) {
    return unverified(
      'identity-mismatch',
      `signed by ${subject ?? 'no identity'} (issuer ${issuer ?? 'unknown'}), not the identity the rule trusts`,
    );
  }
  return { subject: subject ?? '', issuer: issuer ?? '' };
}

/** A keyless classic signature in bundle form: the certificate and the Rekor bundle annotation's entry. */
function classicBundle(found: CosignSignature): Bundle | Unverified {
  if (found.certificate === undefined)
    return unverified('untrusted-signer', 'signed with a key, while the rule trusts certificate identities');
  if (found.rekorBundle === undefined) return unverified('invalid-signature', 'the signature has no transparency log entry');
  try {
    const rekor = JSON.parse(found.rekorBundle) as { SignedEntryTimestamp: string; Payload: Record<string, unknown> };
    const { body, integratedTime, logIndex, logID } = rekor.Payload as {
      body: string;
      integratedTime: number;
      logIndex: number;
      logID: string;
    };
    const entry = JSON.parse(Buffer.from(body, 'base64').toString('utf8')) as { kind: string; apiVersion: string };
    const blocks =
      `${found.certificate}\n${found.chain ?? ''}`.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    return bundleFromJSON({
      mediaType: BUNDLE_V01_MEDIA_TYPE,
      verificationMaterial: {
        x509CertificateChain: { certificates: blocks.map((block) => ({ rawBytes: pem.toDER(block).toString('base64') })) },
        tlogEntries: [
          {
            logIndex: String(logIndex),
            logId: { keyId: Buffer.from(logID, 'hex').toString('base64') },
            kindVersion: { kind: entry.kind, version: entry.apiVersion },
            integratedTime: String(integratedTime),
            inclusionPromise: { signedEntryTimestamp: rekor.SignedEntryTimestamp },
            canonicalizedBody: body,
          },
        ],
      },
      messageSignature: {
        messageDigest: { algorithm: 'SHA2_256', digest: createHash('sha256').update(found.payload).digest('base64') },
        signature: found.signature,
      },
    });
  } catch (err) {
    return unverified('invalid-signature', `the transparency log bundle annotation cannot be read: ${errorMessage(err)}`);
  }
}

function checkCosign(found: CosignSignature, trust: TrustEntry, target: SignedTarget): VerificationResult | undefined {
  const claims = (): ClaimCheck => checkSimpleSigning(found.payload.toString('utf8'), target);
  if (trust.kind === 'keys') {
    const key = signingKey(trust.keys, found.payload, Buffer.from(found.signature, 'base64'));
    if (key === undefined) return unverified('untrusted-signer', 'the signature does not verify with any trusted key');
    return afterClaims(claims(), { ok: true, signer: { key: key.fingerprint }, signedDigest: target.digest, format: 'cosign' });
  }
  const bundle = classicBundle(found);
  if ('ok' in bundle) return bundle;
  const signer = keylessSigner(toSignedEntity(bundle, found.payload), trust);
  if ('ok' in signer) return signer;
  return afterClaims(claims(), { ok: true, signer, signedDigest: target.digest, format: 'cosign' });
}

/** A key-signed bundle against trusted keys: the signature alone (no transparency log is asked of key signers). */
function keySigner(entity: SignedEntity, keys: readonly TrustedKey[]): Signer | Unverified {
  const signatureOnly: SignedEntity = { ...entity, tlogEntries: [], timestamps: [] };
  for (const key of keys) {
    const material: TrustMaterial = {
      certificateAuthorities: [],
      timestampAuthorities: [],
      tlogs: [],
      ctlogs: [],
      publicKey: () => ({ publicKey: key.key, validFor: () => true }),
    };
    try {
      new Verifier(material, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 }).verify(signatureOnly);
      return { key: key.fingerprint };
    } catch {
      // Another key may have made it.
    }
  }
  return unverified('untrusted-signer', 'the signature does not verify with any trusted key');
}

function checkBundle(found: BundleSignature, trust: TrustEntry, target: SignedTarget): VerificationResult | undefined {
  let bundle: Bundle;
  try {
    bundle = bundleFromJSON(found.json);
  } catch (err) {
    return unverified('invalid-signature', `not a valid sigstore bundle: ${errorMessage(err)}`);
  }
  // Only image signatures count; attestations (SBOMs, provenance) attached the same way are no signature.
  if (bundle.content.$case !== 'dsseEnvelope') return undefined;
  const { payloadType, payload } = bundle.content.dsseEnvelope;
  const claims = checkStatement(payloadType, payload.toString('utf8'), target);
  if (!claims.ok && claims.problem === 'not-a-signature') return undefined;
  const entity = toSignedEntity(bundle);
  const byKey = entity.key.$case === 'public-key';
  let signer: Signer | Unverified;
  if (trust.kind === 'keys') {
    signer = byKey
      ? keySigner(entity, trust.keys)
      : unverified('untrusted-signer', 'signed with a certificate, while the rule trusts keys');
  } else {
    signer = byKey
      ? unverified('untrusted-signer', 'signed with a key, while the rule trusts certificate identities')
      : keylessSigner(entity, trust);
  }
  if ('ok' in signer) return signer;
  return afterClaims(claims, { ok: true, signer, signedDigest: target.digest, format: 'bundle' });
}

/**
 * Checks `found` against one trust entry for `target`. `undefined`: it is not an image signature (an attestation,
 * a payload of another kind) and counts as no signature at all.
 */
export function checkSignature(found: FoundSignature, trust: TrustEntry, target: SignedTarget): VerificationResult | undefined {
  return found.format === 'cosign' ? checkCosign(found, trust, target) : checkBundle(found, trust, target);
}
