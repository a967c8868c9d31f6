/**
 * What signature verification costs a container start, in one process: the image-policy interceptor in front of
 * the fake runtime, CreateContainer by image ID as kubelet sends it.
 *
 * - warm: the same CreateContainer through a rule without `verify` and through one with `verify` whose digest is
 *   cached (the steady state: every start after the first), interleaved in rounds; the difference of the medians
 *   is what a verified start adds.
 * - cold: the first CreateContainer of a digest not verified before, against a local docker-registry: a cosign key
 *   signature and a keyless sigstore bundle (mock Fulcio, Rekor and timestamp authority).
 *
 *   node dist/bench/verify-bench.js        (VERIFY_BENCH_CALLS, VERIFY_BENCH_ROUNDS, VERIFY_BENCH_COLD)
 *
 * Needs `docker-registry` on the PATH (scripts/install-e2e-deps.sh). Prints a table and one `VERIFY_BENCH {json}`.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { createImagePolicyInterceptor, imagePolicySchema } from '../src/interceptors/image-policy';
import { encodeMessage } from '../src/messages/codec';
import { startRegistry } from '../test/e2e/harness/registry';
import { OciRegistry } from '../test/support/oci-registry';
import { depsForTestProxy, startTestProxy, type TestProxy } from '../test/support/proxy-harness';
import { attachBundle, cosignSignWithKey, generateKey, MockSigstore, signatureStatement } from '../test/support/signing';

const CALLS = Number(process.env['VERIFY_BENCH_CALLS'] ?? 2000);
const ROUNDS = Number(process.env['VERIFY_BENCH_ROUNDS'] ?? 5);
const COLD = Number(process.env['VERIFY_BENCH_COLD'] ?? 20);
const CREATE = '/runtime.v1.RuntimeService/CreateContainer';
const IDENTITY = { issuer: 'https://token.ci.example', subject: 'https://git.example/corp/app/release.yml@refs/tags/v1' };

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;
}

function createRequest(id: string, name: string): Buffer {
  return encodeMessage('runtime.v1.CreateContainerRequest', {
    pod_sandbox_id: 'sandbox',
    config: { metadata: { name: 'c' }, image: { image: id, user_specified_image: name } },
    sandbox_config: { metadata: { name: 'p', namespace: 'prod' } },
  });
}

/** Latencies in µs of `count` sequential calls. */
async function measure(proxy: TestProxy, request: Buffer, count: number): Promise<number[]> {
  const client = proxy.client();
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = process.hrtime.bigint();
    const result = await client.unary(CREATE, request);
    out.push(Number(process.hrtime.bigint() - started) / 1000);
    if (result.status.code !== grpc.status.OK) throw new Error(`CreateContainer failed: ${result.status.details}`);
  }
  return out;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'cri-proxy-verify-bench-'));
  const server = await startRegistry(dir, dir);
  const sigstore = await MockSigstore.start();
  const registry = new OciRegistry(server.host);
  const key = generateKey('p256');
  const keyFile = join(dir, 'release.pub');
  const rootFile = join(dir, 'trusted_root.json');
  await writeFile(keyFile, key.publicPem);
  await writeFile(rootFile, JSON.stringify(sigstore.trustedRoot));
  let proxy: TestProxy | undefined;
  try {
    // One image per cold start, each with its own digest; then the warm one.
    const images: { name: string; digest: string; id: string; keyless: boolean }[] = [];
    for (let i = 0; i < 2 * COLD + 1; i++) {
      const keyless = i % 2 === 1;
      const repository = keyless ? `prod/keyless-${i}` : `prod/keyed-${i}`;
      const manifest = await registry.pushImage(repository, '1', `bench ${i}`);
      if (keyless) await attachBundle(registry, repository, manifest, await sigstore.bundle(signatureStatement(manifest.digest), IDENTITY));
      else await cosignSignWithKey(registry, repository, manifest.digest, key);
      images.push({
        name: `${server.host}/${repository}:1`,
        digest: manifest.digest,
        id: `sha256:${String(i).padStart(64, '0')}`,
        keyless,
      });
    }
    const config = imagePolicySchema.parse({
      stateDir: join(dir, 'state'),
      registries: { [server.host]: { plainHttp: true } },
      rules: [
        { name: 'plain', match: { images: [`${server.host}/plain/**`] }, action: 'allow' },
        { name: 'keyed', match: { images: [`${server.host}/prod/keyed-*`] }, action: 'allow', verify: [{ keys: [keyFile] }] },
        {
          name: 'keyless',
          match: { images: [`${server.host}/prod/keyless-*`] },
          action: 'allow',
          verify: [{ keyless: { issuer: IDENTITY.issuer, subject: IDENTITY.subject, trustedRoot: rootFile } }],
        },
      ],
    });
    const { deps, bind } = depsForTestProxy('images', new Registry());
    proxy = await startTestProxy({
      entries: [{ interceptor: createImagePolicyInterceptor(config, deps), onError: 'failClosed', methods: undefined }],
    });
    bind(proxy);
    const runtime = proxy.runtime;
    const names = new Map(images.map((i) => [i.id, [i.name, `${i.name.replace(/:1$/, '')}@${i.digest}`]]));
    runtime.on('ImageStatus', {
      respond: (call) => {
        const id = [...names.keys()].find((candidate) => call.requestBytes.includes(Buffer.from(candidate)));
        const found = id === undefined ? undefined : names.get(id);
        return encodeMessage(
          'runtime.v1.ImageStatusResponse',
          found === undefined ? {} : { image: { id, repo_tags: [], repo_digests: found } },
        );
      },
    });

    const cold = { keyed: [] as number[], keyless: [] as number[] };
    for (const image of images.slice(0, 2 * COLD)) {
      const [ms] = await measure(proxy, createRequest(image.id, image.name), 1);
      (image.keyless ? cold.keyless : cold.keyed).push((ms ?? 0) / 1000);
    }

    const warmImage = images[2 * COLD];
    if (warmImage === undefined) throw new Error('no warm image');
    const verified = createRequest(warmImage.id, warmImage.name);
    const plainId = `sha256:${'f'.repeat(64)}`;
    const unverified = createRequest(plainId, `${server.host}/plain/app:1`);
    await measure(proxy, verified, 50);
    await measure(proxy, unverified, 50);
    const rounds: { plain: number; verified: number; plainP99: number; verifiedP99: number }[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const first = round % 2 === 0;
      const a = await measure(proxy, first ? unverified : verified, CALLS);
      const b = await measure(proxy, first ? verified : unverified, CALLS);
      const [plain, withVerify] = first ? [a, b] : [b, a];
      rounds.push({
        plain: median(plain),
        verified: median(withVerify),
        plainP99: percentile(plain, 0.99),
        verifiedP99: percentile(withVerify, 0.99),
      });
    }
    const result = {
      calls: CALLS,
      rounds: ROUNDS,
      warm: {
        unverifiedP50Us: median(rounds.map((r) => r.plain)),
        verifiedP50Us: median(rounds.map((r) => r.verified)),
        addedP50Us: median(rounds.map((r) => r.verified - r.plain)),
        addedP99Us: median(rounds.map((r) => r.verifiedP99 - r.plainP99)),
        targetAddedUs: 1000,
      },
      cold: {
        keyedP50Ms: median(cold.keyed),
        keyedMaxMs: Math.max(...cold.keyed),
        keylessP50Ms: median(cold.keyless),
        keylessMaxMs: Math.max(...cold.keyless),
        samples: COLD,
      },
    };
    const f = (n: number): string => n.toFixed(1);
    process.stdout.write(
      [
        `CreateContainer through the image policy, ${CALLS} calls x ${ROUNDS} rounds, medians of rounds:`,
        `  rule without verify            p50 ${f(result.warm.unverifiedP50Us)} us`,
        `  rule with verify (cache hit)   p50 ${f(result.warm.verifiedP50Us)} us   added p50 ${f(result.warm.addedP50Us)} us, p99 ${f(result.warm.addedP99Us)} us (target <= 1000 us)`,
        `first start of a digest (online verification against a local registry, ${COLD} each):`,
        `  cosign key signature           p50 ${f(result.cold.keyedP50Ms)} ms   max ${f(result.cold.keyedMaxMs)} ms`,
        `  keyless sigstore bundle        p50 ${f(result.cold.keylessP50Ms)} ms   max ${f(result.cold.keylessMaxMs)} ms`,
        `VERIFY_BENCH ${JSON.stringify(result)}`,
        '',
      ].join('\n'),
    );
  } finally {
    await proxy?.close();
    await sigstore.close();
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`verify-bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
