/**
 * Signature checks without a registry: payload claims (digest and repository), the key types cosign signs with,
 * sigstore bundles, and every reason a signature is refused.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkSimpleSigning, checkStatement, sameRepository, type SignedTarget } from '../../src/policies/signature-claims';
import { checkSignature } from '../../src/provenance/check-signature';
import type { CosignSignature, FoundSignature } from '../../src/provenance/discovery';
import { failureCode, furthest, unverified, VERIFY_FAILURES } from '../../src/provenance/outcome';
import { loadTrust, readPublicKey, type TrustEntry } from '../../src/provenance/trust';
import {
  generateKey,
  keyBundle,
  MockSigstore,
  signatureStatement,
  signWithKey,
  simpleSigningPayload,
  type KeyType,
  type SigningKey,
} from '../support/signing';

const DIGEST = `sha256:${'a1'.repeat(32)}`;
const OTHER = `sha256:${'b2'.repeat(32)}`;
const TARGET: SignedTarget = { registry: 'registry.corp.example', repository: 'prod/app', digest: DIGEST };
const dir = mkdtempSync(join(tmpdir(), 'cri-proxy-signature-checks-'));
let files = 0;

function pemFile(text: string): string {
  const file = join(dir, `file-${++files}`);
  writeFileSync(file, text);
  return file;
}

function keysEntry(...keys: SigningKey[]): TrustEntry {
  const loaded = loadTrust([{ keys: keys.map((k) => pemFile(k.publicPem)) }]);
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
  const [entry] = loaded.trust.entries;
  if (entry === undefined) throw new Error('no entry');
  return entry;
}

function cosign(key: SigningKey, payload: Buffer = simpleSigningPayload('registry.corp.example/prod/app', DIGEST)): CosignSignature {
  return {
    format: 'cosign',
    payload,
    signature: signWithKey(key, payload).toString('base64'),
    certificate: undefined,
    chain: undefined,
    rekorBundle: undefined,
  };
}

describe('simple-signing payload claims', () => {
  const payload = (reference: string, digest: string): string => simpleSigningPayload(reference, digest).toString('utf8');

  test('the digest and the repository must be the image being verified', () => {
    expect(checkSimpleSigning(payload('registry.corp.example/prod/app', DIGEST), TARGET)).toEqual({ ok: true });
    expect(checkSimpleSigning(payload('registry.corp.example/prod/app', OTHER), TARGET)).toMatchObject({
      ok: false,
      problem: 'digest-mismatch',
    });
    expect(checkSimpleSigning(payload('registry.corp.example/prod/other', DIGEST), TARGET)).toMatchObject({
      ok: false,
      problem: 'reference-mismatch',
    });
    expect(checkSimpleSigning(payload('evil.example/prod/app', DIGEST), TARGET)).toMatchObject({
      ok: false,
      problem: 'reference-mismatch',
    });
  });

  test('keys match without regard to case, as Go decodes them; a tag in the reference is ignored', () => {
    const text = JSON.stringify({
      Critical: {
        Identity: { 'Docker-Reference': 'registry.corp.example/prod/app:1.0' },
        Image: { 'Docker-manifest-digest': DIGEST },
        Type: 'cosign container image signature',
      },
    });
    expect(checkSimpleSigning(text, TARGET)).toEqual({ ok: true });
  });

  test('Docker Hub names match however they are spelled', () => {
    const hub = { registry: 'docker.io', repository: 'library/busybox' };
    for (const spelling of ['index.docker.io/library/busybox', 'docker.io/library/busybox', 'busybox', 'docker.io/busybox:1.36']) {
      expect([spelling, sameRepository(spelling, hub)]).toEqual([spelling, true]);
    }
    expect(sameRepository('docker.io/library/busybox-evil', hub)).toBe(false);
  });

  test('anything but a cosign image signature is not a signature', () => {
    expect(checkSimpleSigning('not json', TARGET)).toMatchObject({ problem: 'not-a-signature' });
    expect(checkSimpleSigning(JSON.stringify({ critical: { type: 'atomic container signature' } }), TARGET)).toMatchObject({
      problem: 'not-a-signature',
    });
  });
});

describe('in-toto statement claims', () => {
  test("cosign's signature predicate with the image's digest as subject", () => {
    const type = 'application/vnd.in-toto+json';
    expect(checkStatement(type, signatureStatement(DIGEST).toString(), TARGET)).toEqual({ ok: true });
    expect(checkStatement(type, signatureStatement(OTHER).toString(), TARGET)).toMatchObject({ problem: 'digest-mismatch' });
    expect(checkStatement(type, signatureStatement(DIGEST, 'https://slsa.dev/provenance/v1').toString(), TARGET)).toMatchObject({
      problem: 'not-a-signature',
    });
    expect(checkStatement('application/json', signatureStatement(DIGEST).toString(), TARGET)).toMatchObject({ problem: 'not-a-signature' });
  });
});

describe('key signatures', () => {
  test.each<KeyType>(['p256', 'p384', 'rsa', 'ed25519'])('%s keys verify, naming the key by fingerprint', (type) => {
    const key = generateKey(type);
    const entry = keysEntry(generateKey(), key);
    const fingerprint = readPublicKey(pemFile(key.publicPem)).fingerprint;
    expect(checkSignature(cosign(key), entry, TARGET)).toEqual({
      ok: true,
      signer: { key: fingerprint },
      signedDigest: DIGEST,
      format: 'cosign',
    });
  });

  test('a P-384 key that signed with SHA-256 (older cosign) verifies too', () => {
    const key = generateKey('p384');
    const payload = simpleSigningPayload('registry.corp.example/prod/app', DIGEST);
    const { sign } = jest.requireActual<typeof import('node:crypto')>('node:crypto');
    const found: FoundSignature = { ...cosign(key), signature: sign('sha256', payload, key.privateKey).toString('base64') };
    expect(checkSignature(found, keysEntry(key), TARGET)).toMatchObject({ ok: true });
  });

  test('every reason a key signature is refused', () => {
    const key = generateKey();
    const entry = keysEntry(key);
    expect(checkSignature(cosign(generateKey()), entry, TARGET)).toMatchObject({ ok: false, failure: 'untrusted-signer' });
    expect(checkSignature(cosign(key, simpleSigningPayload('registry.corp.example/prod/app', OTHER)), entry, TARGET)).toMatchObject({
      failure: 'digest-mismatch',
    });
    expect(checkSignature(cosign(key, simpleSigningPayload('registry.corp.example/prod/else', DIGEST)), entry, TARGET)).toMatchObject({
      failure: 'reference-mismatch',
    });
    const tampered = cosign(key);
    const altered: FoundSignature = { ...tampered, payload: Buffer.from(tampered.payload.toString().replace(DIGEST, OTHER)) };
    expect(checkSignature(altered, entry, TARGET)).toMatchObject({ failure: 'untrusted-signer' });
    // A trusted key's signature over something else entirely is no image signature.
    expect(checkSignature(cosign(key, Buffer.from('{"hello":"world"}')), entry, TARGET)).toBeUndefined();
  });

  test('key files: unsupported types and short RSA keys are refused when the policy loads', () => {
    const { generateKeyPairSync } = jest.requireActual<typeof import('node:crypto')>('node:crypto');
    const pem = (k: import('node:crypto').KeyObject): string => k.export({ format: 'pem', type: 'spki' }).toString();
    const secp256k1 = pemFile(pem(generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey));
    const rsa1024 = pemFile(pem(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey));
    const loaded = loadTrust([{ keys: [secp256k1, rsa1024, join(dir, 'missing.pub')] }]);
    expect(loaded.ok ? [] : loaded.problems.map((p) => [p.path.join('.'), p.message.replace(dir, '')])).toEqual([
      ['verify.0.keys.0', expect.stringMatching(/P-256, P-384 or P-521, not secp256k1/) as unknown],
      ['verify.0.keys.1', expect.stringMatching(/at least 2048 bits/) as unknown],
      ['verify.0.keys.2', expect.stringMatching(/ENOENT/) as unknown],
    ]);
  });
});

describe('sigstore bundles', () => {
  let sigstore: MockSigstore;
  let keyless: TrustEntry;
  const identity = { issuer: 'https://token.ci.example', subject: 'https://git.example/corp/app/release.yml@refs/tags/v1' };

  beforeAll(async () => {
    sigstore = await MockSigstore.start();
    const root = pemFile(JSON.stringify(sigstore.trustedRoot));
    const loaded = loadTrust([{ keyless: { issuer: identity.issuer, subjectRegExp: '^https://git\\.example/corp/', trustedRoot: root } }]);
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
    keyless = loaded.trust.entries[0] as TrustEntry;
  });

  afterAll(async () => {
    await sigstore.close();
  });

  const bundle = async (statement: Buffer, who = identity, expired = false): Promise<FoundSignature> => ({
    format: 'bundle',
    json: await sigstore.bundle(statement, who, { expired }),
  });

  test('a keyless bundle verifies, naming the certificate identity', async () => {
    expect(checkSignature(await bundle(signatureStatement(DIGEST)), keyless, TARGET)).toEqual({
      ok: true,
      signer: { subject: identity.subject, issuer: identity.issuer },
      signedDigest: DIGEST,
      format: 'bundle',
    });
  });

  test('every reason a bundle is refused', async () => {
    expect(checkSignature(await bundle(signatureStatement(OTHER)), keyless, TARGET)).toMatchObject({ failure: 'digest-mismatch' });
    const rogue = { issuer: identity.issuer, subject: 'https://git.example/fork/app/release.yml@refs/heads/main' };
    expect(checkSignature(await bundle(signatureStatement(DIGEST), rogue), keyless, TARGET)).toMatchObject({
      failure: 'identity-mismatch',
    });
    const otherIssuer = { issuer: 'https://accounts.example', subject: identity.subject };
    expect(checkSignature(await bundle(signatureStatement(DIGEST), otherIssuer), keyless, TARGET)).toMatchObject({
      failure: 'identity-mismatch',
    });
    expect(checkSignature(await bundle(signatureStatement(DIGEST), identity, true), keyless, TARGET)).toMatchObject({
      failure: 'invalid-signature',
    });
    const altered = (await bundle(signatureStatement(OTHER))) as { format: 'bundle'; json: { dsseEnvelope: { payload: string } } };
    altered.json.dsseEnvelope.payload = signatureStatement(DIGEST).toString('base64');
    expect(checkSignature(altered, keyless, TARGET)).toMatchObject({ failure: 'invalid-signature' });
    // From a sigstore this root does not trust.
    const stranger = await MockSigstore.start();
    try {
      const foreign: FoundSignature = { format: 'bundle', json: await stranger.bundle(signatureStatement(DIGEST), identity) };
      expect(checkSignature(foreign, keyless, TARGET)).toMatchObject({ failure: 'untrusted-signer' });
    } finally {
      await stranger.close();
    }
    expect(checkSignature({ format: 'bundle', json: { mediaType: 'nonsense' } }, keyless, TARGET)).toMatchObject({
      failure: 'invalid-signature',
    });
  });

  test('a key-signed bundle is for key entries only', async () => {
    const key = generateKey();
    const found: FoundSignature = { format: 'bundle', json: await keyBundle(key, signatureStatement(DIGEST)) };
    expect(checkSignature(found, keysEntry(key), TARGET)).toMatchObject({ ok: true, format: 'bundle' });
    expect(checkSignature(found, keysEntry(generateKey()), TARGET)).toMatchObject({ failure: 'untrusted-signer' });
    expect(checkSignature(found, keyless, TARGET)).toMatchObject({ failure: 'untrusted-signer' });
  });
});

describe('outcomes', () => {
  test('every failure has a stable error code, and the one that got furthest is reported', () => {
    for (const failure of VERIFY_FAILURES) expect(failureCode[failure]).toMatch(/^[A-Z_]+$/);
    const missing = unverified('no-signature', 'none');
    const mismatch = unverified('digest-mismatch', 'other');
    expect(furthest(missing, mismatch)).toBe(mismatch);
    expect(furthest(mismatch, missing)).toBe(mismatch);
    expect(furthest(undefined, missing)).toBe(missing);
  });
});
