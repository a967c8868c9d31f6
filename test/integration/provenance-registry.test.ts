/**
 * Signature verification against a real registry (Debian's docker-registry, which has no referrers API), with
 * images pushed and signed by the test: keys made per run, cosign's classic layout, sigstore bundles made with
 * @sigstore/sign against @sigstore/mock's services, and the trusted root built for them.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Registry } from '../e2e/harness/registry';
import type { SignedTarget } from '../../src/policies/signature-claims';
import type { VerificationResult } from '../../src/provenance/outcome';
import { Provenance } from '../../src/provenance/provenance';
import { loadTrust, type RuleTrust } from '../../src/provenance/trust';
import type { VerifyEntry } from '../../src/policies/image-rules';
import type { Descriptor, OciRegistry } from '../support/oci-registry';
import { startTestRegistry, stopTestRegistry } from '../support/test-registry';
import {
  attachBundle,
  attachCosignSignature,
  cosignSignWithKey,
  generateKey,
  keyBundle,
  MockSigstore,
  signatureStatement,
  signWithKey,
  simpleSigningPayload,
  type KeyType,
  type SigningKey,
} from '../support/signing';

jest.setTimeout(120_000);

const ISSUER = 'https://token.ci.example';
const RELEASE = { issuer: ISSUER, subject: 'https://git.example/corp/app/.github/workflows/release.yml@refs/tags/v1.0.0' };
const ROGUE = { issuer: ISSUER, subject: 'https://git.example/someone/fork/.github/workflows/release.yml@refs/heads/main' };

let dir: string;
let server: Registry;
let registry: OciRegistry;
let sigstore: MockSigstore;
let provenance: Provenance;
let releaseKey: SigningKey;
let otherKey: SigningKey;
let rootFile: string;
let counter = 0;

async function keyFile(key: SigningKey): Promise<string> {
  const file = join(dir, `key-${++counter}.pub`);
  await writeFile(file, key.publicPem);
  return file;
}

function trust(entries: VerifyEntry[]): RuleTrust {
  const loaded = loadTrust(entries);
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
  return loaded.trust;
}

async function keyTrust(...keys: SigningKey[]): Promise<RuleTrust> {
  return trust([{ keys: await Promise.all(keys.map(keyFile)) }]);
}

function keylessTrust(subject = RELEASE.subject): RuleTrust {
  return trust([{ keyless: { issuer: ISSUER, subject, trustedRoot: rootFile } }]);
}

/** A fresh image in its own repository. */
async function image(name: string): Promise<{ repository: string; manifest: Descriptor; target: SignedTarget }> {
  const repository = `tests/${name}-${++counter}`;
  const manifest = await registry.pushImage(repository, 'v1', `${name} ${counter}`);
  return { repository, manifest, target: { registry: registry.host, repository, digest: manifest.digest } };
}

async function verify(t: RuleTrust, target: SignedTarget): Promise<VerificationResult> {
  return (await provenance.verify({ trust: t, target, remember: false })).result;
}

function failureOf(result: VerificationResult): string {
  return result.ok ? 'verified' : result.failure;
}

beforeAll(async () => {
  ({ dir, server, registry } = await startTestRegistry('cri-proxy-provenance-'));
  sigstore = await MockSigstore.start();
  rootFile = join(dir, 'trusted_root.json');
  await writeFile(rootFile, JSON.stringify(sigstore.trustedRoot));
  releaseKey = generateKey('p256');
  otherKey = generateKey('p256');
  provenance = new Provenance({
    registries: { [server.host]: { plainHttp: true } },
    requestTimeoutMs: 10_000,
    concurrency: 4,
    cacheFile: join(dir, 'state', 'verified.json'),
    cacheSize: 100,
    onCacheError: (problem) => {
      throw new Error(problem);
    },
  });
});

afterAll(async () => {
  await provenance?.close();
  await sigstore?.close();
  await stopTestRegistry(server, dir);
});

describe('cosign signatures (the sha256-<hex>.sig tag)', () => {
  test.each<KeyType>(['p256', 'p384', 'rsa', 'ed25519'])('a signature by a trusted %s key verifies, naming the key', async (type) => {
    const key = generateKey(type);
    const { repository, target } = await image(`signed-${type}`);
    await cosignSignWithKey(registry, repository, target.digest, key);
    const t = await keyTrust(otherKey, key);
    const result = await verify(t, target);
    expect(result).toMatchObject({ ok: true, format: 'cosign', signedDigest: target.digest });
    const fingerprint = t.entries[0]?.kind === 'keys' ? t.entries[0].keys[1]?.fingerprint : undefined;
    expect(result.ok && result.signer).toEqual({ key: fingerprint });
  });

  test('an unsigned image has no signature', async () => {
    const { target } = await image('unsigned');
    const result = await verify(await keyTrust(releaseKey), target);
    expect(failureOf(result)).toBe('no-signature');
  });

  test('a signature by another key is untrusted', async () => {
    const { repository, target } = await image('other-key');
    await cosignSignWithKey(registry, repository, target.digest, otherKey);
    expect(failureOf(await verify(await keyTrust(releaseKey), target))).toBe('untrusted-signer');
  });

  test('of several signatures, one by a trusted key is enough', async () => {
    const { repository, target } = await image('two-signatures');
    await cosignSignWithKey(registry, repository, target.digest, otherKey);
    await cosignSignWithKey(registry, repository, target.digest, releaseKey);
    expect(failureOf(await verify(await keyTrust(releaseKey), target))).toBe('verified');
  });

  test('a trusted signature of another digest, copied to this one, is a digest mismatch', async () => {
    const signed = await image('signed-elsewhere');
    const copied = await image('copied-to');
    const payload = simpleSigningPayload(`${registry.host}/${copied.repository}`, signed.manifest.digest);
    await cosignSignWithKey(registry, copied.repository, copied.target.digest, releaseKey, payload);
    expect(failureOf(await verify(await keyTrust(releaseKey), copied.target))).toBe('digest-mismatch');
  });

  test('a trusted signature naming another repository is a reference mismatch', async () => {
    const { repository, target } = await image('other-repository');
    const payload = simpleSigningPayload(`${registry.host}/somewhere/else`, target.digest);
    await cosignSignWithKey(registry, repository, target.digest, releaseKey, payload);
    const result = await verify(await keyTrust(releaseKey), target);
    expect(failureOf(result)).toBe('reference-mismatch');
    expect(!result.ok && result.detail).toContain('somewhere/else');
  });

  test('a payload altered after signing no longer verifies', async () => {
    const { repository, target } = await image('tampered');
    const payload = simpleSigningPayload(`${registry.host}/${repository}`, target.digest);
    const signature = signWithKey(releaseKey, payload).toString('base64');
    const altered = Buffer.from(payload.toString('utf8').replace('"optional":null', '"optional":{"owner":"mallory"}'));
    await attachCosignSignature(registry, repository, target.digest, {
      payload: altered,
      annotations: { 'dev.cosignproject.cosign/signature': signature },
    });
    expect(failureOf(await verify(await keyTrust(releaseKey), target))).toBe('untrusted-signer');
  });

  test('a keyless signature (certificate and Rekor bundle annotations) verifies, naming the identity', async () => {
    const { repository, target } = await image('keyless-classic');
    const payload = simpleSigningPayload(`${registry.host}/${repository}`, target.digest);
    await attachCosignSignature(registry, repository, target.digest, {
      payload,
      annotations: await sigstore.cosignAnnotations(payload, RELEASE),
    });
    const result = await verify(keylessTrust(), target);
    expect(result).toMatchObject({ ok: true, format: 'cosign', signer: { subject: RELEASE.subject, issuer: ISSUER } });
    expect(failureOf(await verify(keylessTrust('https://git.example/other'), target))).toBe('identity-mismatch');
  });
});

describe('sigstore bundles (OCI referrers, through the referrers tag schema)', () => {
  test('a keyless bundle verifies, naming the identity', async () => {
    const { repository, manifest, target } = await image('bundle');
    await attachBundle(registry, repository, manifest, await sigstore.bundle(signatureStatement(target.digest), RELEASE));
    const result = await verify(keylessTrust(), target);
    expect(result).toMatchObject({ ok: true, format: 'bundle', signer: { subject: RELEASE.subject, issuer: ISSUER } });
    const byRegExp = trust([
      { keyless: { issuerRegExp: '^https://token\\.ci\\.', subjectRegExp: '^https://git\\.example/corp/', trustedRoot: rootFile } },
    ]);
    expect(failureOf(await verify(byRegExp, target))).toBe('verified');
  });

  test('a bundle for another identity is an identity mismatch', async () => {
    const { repository, manifest, target } = await image('rogue');
    await attachBundle(registry, repository, manifest, await sigstore.bundle(signatureStatement(target.digest), ROGUE));
    const result = await verify(keylessTrust(), target);
    expect(failureOf(result)).toBe('identity-mismatch');
    expect(!result.ok && result.detail).toContain(ROGUE.subject);
  });

  test('a certificate that had expired when it signed is invalid', async () => {
    const { repository, manifest, target } = await image('expired');
    await attachBundle(
      registry,
      repository,
      manifest,
      await sigstore.bundle(signatureStatement(target.digest), RELEASE, { expired: true }),
    );
    expect(failureOf(await verify(keylessTrust(), target))).toBe('invalid-signature');
  });

  test('a bundle whose statement was altered is invalid', async () => {
    const { repository, manifest, target } = await image('altered-bundle');
    const other = await image('altered-bundle-source');
    const bundle = (await sigstore.bundle(signatureStatement(other.target.digest), RELEASE)) as { dsseEnvelope: { payload: string } };
    bundle.dsseEnvelope.payload = signatureStatement(target.digest).toString('base64');
    await attachBundle(registry, repository, manifest, bundle);
    expect(failureOf(await verify(keylessTrust(), target))).toBe('invalid-signature');
  });

  test('a bundle for another digest is a digest mismatch', async () => {
    const { repository, manifest, target } = await image('bundle-elsewhere');
    const other = await image('bundle-elsewhere-source');
    await attachBundle(registry, repository, manifest, await sigstore.bundle(signatureStatement(other.target.digest), RELEASE));
    expect(failureOf(await verify(keylessTrust(), target))).toBe('digest-mismatch');
  });

  test('an attestation is not a signature', async () => {
    const { repository, manifest, target } = await image('attested');
    await attachBundle(
      registry,
      repository,
      manifest,
      await sigstore.bundle(signatureStatement(target.digest, 'https://slsa.dev/provenance/v1'), RELEASE),
    );
    expect(failureOf(await verify(keylessTrust(), target))).toBe('no-signature');
  });

  test('a key-signed bundle verifies with the key', async () => {
    const { repository, manifest, target } = await image('key-bundle');
    await attachBundle(registry, repository, manifest, await keyBundle(releaseKey, signatureStatement(target.digest)));
    expect(await verify(await keyTrust(releaseKey), target)).toMatchObject({ ok: true, format: 'bundle' });
    expect(failureOf(await verify(await keyTrust(otherKey), target))).toBe('untrusted-signer');
    expect(failureOf(await verify(keylessTrust(), target))).toBe('untrusted-signer');
  });
});

describe('multi-platform images', () => {
  const platforms = [
    { os: 'linux', architecture: 'amd64' },
    { os: 'linux', architecture: 'arm64' },
    { os: 'linux', architecture: 'riscv64' },
  ];

  test('the index signature vouches for the image', async () => {
    const repository = `tests/multi-${++counter}`;
    const { index } = await registry.pushIndex(repository, 'v1', `multi ${counter}`, platforms);
    await cosignSignWithKey(registry, repository, index.digest, releaseKey);
    const result = await verify(await keyTrust(releaseKey), { registry: registry.host, repository, digest: index.digest });
    expect(result).toMatchObject({ ok: true, signedDigest: index.digest });
  });

  test("with only platform manifests signed, this node's platform manifest's signature is enough", async () => {
    const repository = `tests/multi-${++counter}`;
    const { index, manifests } = await registry.pushIndex(repository, 'v1', `multi ${counter}`, platforms);
    const arch = { x64: 'amd64', arm64: 'arm64', riscv64: 'riscv64' }[process.arch as string] ?? 'amd64';
    const own = manifests.find((m) => m.platform?.architecture === arch);
    if (own === undefined) throw new Error(`no manifest for ${arch}`);
    await cosignSignWithKey(registry, repository, own.digest, releaseKey);
    const result = await verify(await keyTrust(releaseKey), { registry: registry.host, repository, digest: index.digest });
    expect(result).toMatchObject({ ok: true, signedDigest: own.digest });
  });
});

describe('the cache and a registry that is down', () => {
  test('a verified digest is remembered across restarts; a registry that is down makes others unverifiable', async () => {
    const { repository, target } = await image('remembered');
    const unsigned = await image('never-verified');
    await cosignSignWithKey(registry, repository, target.digest, releaseKey);
    const t = await keyTrust(releaseKey);
    expect((await provenance.verify({ trust: t, target })).cached).toBe(false);
    expect((await provenance.verify({ trust: t, target })).cached).toBe(true);
    await provenance.close();

    await server.process.stop();
    const restarted = new Provenance({
      registries: { [server.host]: { plainHttp: true } },
      requestTimeoutMs: 5000,
      concurrency: 4,
      cacheFile: join(dir, 'state', 'verified.json'),
      cacheSize: 100,
      onCacheError: () => undefined,
    });
    try {
      const remembered = await restarted.verify({ trust: t, target });
      expect(remembered).toMatchObject({
        cached: true,
        result: { ok: true, signer: { key: expect.stringMatching(/^sha256:/) as unknown } },
      });
      const down = await restarted.verify({ trust: t, target: unsigned.target });
      expect(failureOf(down.result)).toBe('registry-unavailable');
      expect(!down.result.ok && down.result.detail).toContain(`registry ${server.host}`);
      // Another trust has verified nothing: the cache is per rule's trust.
      expect(failureOf((await restarted.verify({ trust: await keyTrust(otherKey), target })).result)).toBe('registry-unavailable');
    } finally {
      await restarted.close();
    }
  });
});
