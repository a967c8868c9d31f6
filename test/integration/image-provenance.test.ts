/**
 * The image policy's `verify` rules in a chain (tracing, audit, image policy) in front of the fake runtime, with a
 * real registry holding images signed by the test: PullImage resolves and verifies before the pull and confirms
 * after it, CreateContainer verifies the image on the node, and what was decided reaches the audit record, the
 * metrics and the trace.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { Registry } from 'prom-client';
import { auditConfigSchema, createAuditInterceptor } from '../../src/interceptors/audit';
import { createImagePolicyInterceptor, imagePolicySchema } from '../../src/interceptors/image-policy';
import { createTracingInterceptor } from '../../src/interceptors/tracing';
import { tracingConfigSchema } from '../../src/interceptors/tracing/config';
import { createLogger } from '../../src/log';
import { decodeMessage, encodeMessage } from '../../src/messages/codec';
import type { Interceptor } from '../../src/chain/types';
import type { Registry as RegistryServer } from '../e2e/harness/registry';
import { freePort } from '../e2e/harness/processes';
import { sample } from '../support/metric-samples';
import type { OciRegistry } from '../support/oci-registry';
import { startTestRegistry, stopTestRegistry } from '../support/test-registry';
import { depsForTestProxy, startTestProxy, type RawClient, type TestProxy } from '../support/proxy-harness';
import { cosignSignWithKey, generateKey, simpleSigningPayload, type SigningKey } from '../support/signing';

jest.setTimeout(120_000);

const PULL = '/runtime.v1.ImageService/PullImage';
const CREATE = '/runtime.v1.RuntimeService/CreateContainer';
const SECRET = 'sentinel-registry-password-5d1f';

let dir: string;
let server: RegistryServer;
let registry: OciRegistry;
let key: SigningKey;
let keyFile: string;
let counter = 0;

/** An image in its own repository, signed or not; the ID the fake runtime gives it once pulled. */
async function image(signed: boolean): Promise<{ name: string; repository: string; digest: string; id: string }> {
  const repository = `prod/app-${++counter}`;
  const manifest = await registry.pushImage(repository, 'v1', `app ${counter}`);
  if (signed) await cosignSignWithKey(registry, repository, manifest.digest, key);
  return {
    name: `${registry.host}/${repository}:v1`,
    repository,
    digest: manifest.digest,
    id: `sha256:${String(counter).padStart(64, '0')}`,
  };
}

beforeAll(async () => {
  ({ dir, server, registry } = await startTestRegistry('cri-proxy-image-provenance-'));
  key = generateKey();
  keyFile = join(dir, 'release.pub');
  await writeFile(keyFile, key.publicPem);
});

afterAll(async () => {
  await stopTestRegistry(server, dir);
});

describe('image policy with verify rules', () => {
  let proxy: TestProxy;
  let client: RawClient;
  let metrics: Registry;
  let exporter: InMemorySpanExporter;
  let auditLog: string;
  let logLines: string[];
  /** What the fake runtime's ImageStatus knows: image (name or ID) → its ID and names. */
  let images: Map<string, { id: string; names: string[] }>;

  async function start(
    extra: Record<string, unknown> = {},
    registries: Record<string, unknown> = { [server.host]: { plainHttp: true } },
  ): Promise<void> {
    metrics = new Registry();
    logLines = [];
    images = new Map();
    exporter = new InMemorySpanExporter();
    auditLog = join(dir, `audit-${++counter}.log`);
    const log = createLogger('debug', (line) => logLines.push(line));
    const tracingDeps = depsForTestProxy('tracing', metrics).deps;
    const tracing = createTracingInterceptor(tracingConfigSchema.parse({}), {
      name: tracingDeps.name,
      log: tracingDeps.log,
      registry: metrics,
      get router() {
        return tracingDeps.router;
      },
      tracerProvider: new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
    });
    const audit = createAuditInterceptor(auditConfigSchema.parse({ path: auditLog }), depsForTestProxy('audit', metrics, log).deps);
    const { deps, bind } = depsForTestProxy('images', metrics, log);
    const policy = imagePolicySchema.parse({
      stateDir: join(dir, `state-${counter}`),
      registries,
      rules: [
        { name: 'prod-signed', match: { images: [`${server.host}/prod/**`] }, action: 'allow', verify: [{ keys: [keyFile] }], ...extra },
      ],
    });
    runtimePull = undefined;
    // Stands for the runtime's own pull, after the policy let it through.
    const puller: Interceptor = {
      name: 'puller',
      intercept: async (ctx, next) => {
        if (ctx.method.name === 'PullImage') await runtimePull?.();
        return next();
      },
    };
    const interceptors: Interceptor[] = [tracing, audit, createImagePolicyInterceptor(policy, deps), puller];
    proxy = await startTestProxy({
      entries: interceptors.map((interceptor) => ({ interceptor, onError: 'failClosed', methods: undefined })),
      log,
    });
    bind(proxy);
    client = proxy.client();
    proxy.runtime.on('ImageStatus', {
      respond: (call) => {
        const asked = decodeMessage('runtime.v1.ImageStatusRequest', call.requestBytes);
        const spec = asked['image'] as { image?: string } | undefined;
        const known = images.get(spec?.image ?? '');
        return encodeMessage(
          'runtime.v1.ImageStatusResponse',
          known === undefined ? {} : { image: { id: known.id, repo_tags: [], repo_digests: known.names } },
        );
      },
    });
  }

  /**
   * What the runtime pulls for `target`: whatever its tag names at the registry when the pull reaches the runtime
   * (after `beforePull`, which may move the tag), recorded under the image's ID for ImageStatus.
   */
  function pullsFromRegistry(target: { repository: string; id: string }, beforePull?: () => Promise<void>): void {
    runtimePull = async () => {
      await beforePull?.();
      const digest = await digestOfTag(target.repository);
      images.set(target.id, { id: target.id, names: [`${registry.host}/${target.repository}@${digest}`] });
      proxy.runtime.on('PullImage', { respond: encodeMessage('runtime.v1.PullImageResponse', { image_ref: target.id }) });
    };
  }
  let runtimePull: (() => Promise<void>) | undefined;

  async function digestOfTag(repository: string): Promise<string> {
    const res = await fetch(`http://${server.host}/v2/${repository}/manifests/v1`, {
      method: 'HEAD',
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    return res.headers.get('docker-content-digest') ?? '';
  }

  afterEach(async () => {
    await proxy.close();
  });

  const runtimeSaw = (name: string): number => proxy.runtime.calls.filter((c) => c.name === name).length;

  async function pull(name: string, auth?: Record<string, string>): Promise<{ code: number; details: string }> {
    const result = await client.unary(
      PULL,
      encodeMessage('runtime.v1.PullImageRequest', {
        image: { image: name },
        sandbox_config: { metadata: { name: 'p', namespace: 'prod' } },
        ...(auth ? { auth } : {}),
      }),
    );
    return { code: result.status.code, details: result.status.details };
  }

  async function create(imageId: string, userSpecified: string): Promise<{ code: number; details: string }> {
    const result = await client.unary(
      CREATE,
      encodeMessage('runtime.v1.CreateContainerRequest', {
        pod_sandbox_id: 'sb',
        config: { metadata: { name: 'c' }, image: { image: imageId, user_specified_image: userSpecified } },
        sandbox_config: { metadata: { name: 'p', namespace: 'prod' } },
      }),
    );
    return { code: result.status.code, details: result.status.details };
  }

  async function auditRecords(): Promise<Record<string, unknown>[]> {
    const text = await readFile(auditLog, 'utf8');
    return text
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  test('a signed image is pulled; the signer reaches the audit record, the metrics and a span under the call', async () => {
    await start();
    const signed = await image(true);
    pullsFromRegistry(signed);
    const result = await pull(signed.name);
    expect(result.code).toBe(grpc.status.OK);
    expect(runtimeSaw('PullImage')).toBe(1);
    const [record] = await auditRecords();
    const policy = record?.['policy'] as { verification?: Record<string, unknown> } | undefined;
    expect(policy?.verification).toEqual({
      result: 'verified',
      digest: signed.digest,
      signer: { key: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) as unknown },
    });
    expect(await sample(metrics, 'cri_proxy_image_verifications_total', { rule: 'prod-signed', result: 'verified' })).toBe(1);
    const spans = exporter.getFinishedSpans();
    const call = spans.find((s) => s.name === 'runtime.v1.ImageService/PullImage');
    const verification = spans.find((s) => s.name === 'image verification');
    expect(verification?.parentSpanContext?.spanId).toBe(call?.spanContext().spanId);
    expect(verification?.attributes).toMatchObject({
      'cri.image_policy.rule': 'prod-signed',
      'cri.image.digest': signed.digest,
      'cri.image_verification.result': 'verified',
      'cri.image_verification.cached': false,
    });
  });

  test('an unsigned image is refused at PullImage, naming the rule and the reason, before the runtime sees it', async () => {
    await start();
    const unsigned = await image(false);
    const result = await pull(unsigned.name);
    expect(result.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(result.details).toMatch(
      new RegExp(`^image "${unsigned.name}" denied by rule "prod-signed" .*: not verified: no signature found for ${unsigned.digest}`),
    );
    expect(runtimeSaw('PullImage')).toBe(0);
    const [record] = await auditRecords();
    expect((record?.['policy'] as Record<string, unknown>)['verification']).toEqual({
      result: 'unverified',
      digest: unsigned.digest,
      failure: 'no-signature',
    });
    expect(logLines.join('\n')).toContain('"code":"SIGNATURE_MISSING"');
  });

  test('at CreateContainer the image on the node is verified by its digest, then answered from the cache', async () => {
    await start();
    const signed = await image(true);
    const unsigned = await image(false);
    for (const i of [signed, unsigned]) images.set(i.id, { id: i.id, names: [i.name, `${registry.host}/${i.repository}@${i.digest}`] });
    expect((await create(unsigned.id, unsigned.name)).code).toBe(grpc.status.PERMISSION_DENIED);
    expect((await create(signed.id, signed.name)).code).toBe(grpc.status.OK);
    expect((await create(signed.id, signed.name)).code).toBe(grpc.status.OK);
    expect(runtimeSaw('CreateContainer')).toBe(2);
    expect(await sample(metrics, 'cri_proxy_image_verification_cache_hits_total', { rule: 'prod-signed' })).toBe(1);
    // The image ID's names are looked up once; the second start needs neither the runtime nor the registry.
    expect(runtimeSaw('ImageStatus')).toBe(2);
  });

  test('an image the runtime knows no digest of in that repository cannot be verified', async () => {
    await start();
    const imported = await image(true);
    images.set(imported.id, { id: imported.id, names: [imported.name] });
    const result = await create(imported.id, imported.name);
    expect(result.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(result.details).toMatch(/knows no digest of .* for this image/);
  });

  test('a tag moved between the check and the pull: the pull is refused and the image it brought removed', async () => {
    await start();
    const signed = await image(true);
    // Someone pushes an unsigned image under the tag once the proxy has verified it.
    pullsFromRegistry(signed, async () => {
      await registry.pushImage(signed.repository, 'v1', `moved ${counter}`);
    });
    const removed: string[] = [];
    proxy.runtime.on('RemoveImage', {
      respond: (call) => {
        const asked = decodeMessage('runtime.v1.RemoveImageRequest', call.requestBytes)['image'] as { image: string };
        removed.push(asked.image);
        return Buffer.alloc(0);
      },
    });
    const result = await pull(signed.name);
    expect(result.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(result.details).toMatch(/changed while it was pulled/);
    expect(removed).toEqual([signed.id]);
  });

  test('onUnverifiable: audit lets an unsigned image run, recorded as unverified', async () => {
    await start({ onUnverifiable: 'audit' });
    const unsigned = await image(false);
    images.set(unsigned.id, { id: unsigned.id, names: [`${registry.host}/${unsigned.repository}@${unsigned.digest}`] });
    expect((await create(unsigned.id, unsigned.name)).code).toBe(grpc.status.OK);
    const [record] = await auditRecords();
    expect(record?.['policy']).toMatchObject({ action: 'allow', verification: { result: 'unverified', failure: 'no-signature' } });
    expect(await sample(metrics, 'cri_proxy_image_verifications_total', { rule: 'prod-signed', result: 'no-signature' })).toBe(1);
  });

  test('a registry that cannot be reached fails the call with UNAVAILABLE naming it', async () => {
    const port = await freePort();
    const host = `127.0.0.1:${port}`;
    await start({}, { [host]: { plainHttp: true } });
    const policy = imagePolicySchema.parse({
      stateDir: join(dir, 'state-down'),
      registries: { [host]: { plainHttp: true } },
      rules: [{ name: 'down', match: { images: [`${host}/**`] }, action: 'allow', verify: [{ keys: [keyFile] }] }],
    });
    await proxy.close();
    const { deps, bind } = depsForTestProxy('images', metrics);
    proxy = await startTestProxy({
      entries: [{ interceptor: createImagePolicyInterceptor(policy, deps), onError: 'failClosed', methods: undefined }],
    });
    bind(proxy);
    client = proxy.client();
    const result = await pull(`${host}/prod/app:1`);
    expect(result.code).toBe(grpc.status.UNAVAILABLE);
    expect(result.details).toContain(`registry ${host}`);
  });
});

describe('credentials a pull carries', () => {
  let front: Server;
  let frontHost: string;
  const seen: string[] = [];

  beforeAll(async () => {
    // A registry front that asks for a bearer token, issued only for the pull's credentials, then relays to the real one.
    front = createServer((req, res) => {
      const authorization = req.headers.authorization ?? '';
      if (req.url?.startsWith('/token')) {
        seen.push(authorization);
        const ok = authorization === `Basic ${Buffer.from(`kubelet:${SECRET}`).toString('base64')}`;
        res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' }).end(ok ? JSON.stringify({ token: 'granted' }) : '{}');
        return;
      }
      if (authorization !== 'Bearer granted') {
        res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${frontHost}/token",service="front"` }).end();
        return;
      }
      const upstream = httpRequest(
        `http://${server.host}${req.url ?? ''}`,
        { method: req.method, headers: { accept: req.headers.accept ?? '*/*' } },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      upstream.end();
    });
    await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
    frontHost = `127.0.0.1:${(front.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => front.close(() => resolve()));
  });

  test("are used for that pull's registry lookups, and never logged or audited", async () => {
    const metrics = new Registry();
    const lines: string[] = [];
    const log = createLogger('debug', (line) => lines.push(line));
    const auditLog = join(dir, 'audit-credentials.log');
    const audit = createAuditInterceptor(auditConfigSchema.parse({ path: auditLog }), depsForTestProxy('audit', metrics, log).deps);
    const { deps, bind } = depsForTestProxy('images', metrics, log);
    const policy = imagePolicySchema.parse({
      stateDir: join(dir, 'state-credentials'),
      registries: { [frontHost]: { plainHttp: true } },
      rules: [{ name: 'private', match: { images: [`${frontHost}/**`] }, action: 'allow', verify: [{ keys: [keyFile] }] }],
    });
    const proxy = await startTestProxy({
      entries: [audit, createImagePolicyInterceptor(policy, deps)].map((interceptor) => ({
        interceptor,
        onError: 'failClosed' as const,
        methods: undefined,
      })),
      log,
    });
    bind(proxy);
    try {
      const signed = await image(false);
      // Signed for the name it is pulled by (through the front).
      await cosignSignWithKey(
        registry,
        signed.repository,
        signed.digest,
        key,
        simpleSigningPayload(`${frontHost}/${signed.repository}`, signed.digest),
      );
      const name = `${frontHost}/${signed.repository}@${signed.digest}`;
      const request = (auth: Record<string, string> | undefined): Buffer =>
        encodeMessage('runtime.v1.PullImageRequest', { image: { image: name }, ...(auth ? { auth } : {}) });
      const client = proxy.client();
      const anonymous = await client.unary(PULL, request(undefined));
      expect(anonymous.status.code).toBe(grpc.status.UNAVAILABLE);
      const withCredentials = await client.unary(PULL, request({ username: 'kubelet', password: SECRET, server_address: frontHost }));
      expect(withCredentials.status.code).toBe(grpc.status.OK);
      expect(seen).toContain(`Basic ${Buffer.from(`kubelet:${SECRET}`).toString('base64')}`);
      const base64 = Buffer.from(`kubelet:${SECRET}`).toString('base64');
      for (const text of [lines.join('\n'), await readFile(auditLog, 'utf8')]) {
        expect(text).not.toContain(SECRET);
        expect(text).not.toContain(base64);
      }
    } finally {
      await proxy.close();
    }
  });
});
