import { renameSync, rmSync, watch, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { App } from '../../src/app';
import { builtinTypes } from '../../src/commands/builtin-types';
import { validateProxyConfig, type ProxyConfig } from '../../src/config/schema';
import { createImagePolicyInterceptor, imagePolicySchema, type ImagePolicyInterceptor } from '../../src/interceptors/image-policy';
import { silentLogger } from '../../src/log';
import { encodeMessage } from '../../src/messages/codec';
import { FakeRuntime } from '../support/fake-runtime';
import { RawClient, makeTempDir, startTestProxy, type TestProxy, depsForTestProxy } from '../support/proxy-harness';
import { ManualScheduler } from '../support/manual-scheduler';
import { sample } from '../support/metric-samples';
import { waitFor } from '../support/wait';

const PULL = '/runtime.v1.ImageService/PullImage';

const ALLOW_OFFICIAL = `
defaultAction: deny
rules:
  - name: official
    match: { images: ["docker.io/library/*"] }
    action: allow
`;
const BLOCK_BUSYBOX = `${ALLOW_OFFICIAL}
  - name: blocked
    match: { images: ["docker.io/library/busybox"] }
    action: deny
`;

const pull = (image: string): Buffer =>
  encodeMessage('runtime.v1.PullImageRequest', { image: { image }, sandbox_config: { metadata: { namespace: 'default' } } });

async function eventually(check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await sleep(20);
  }
}

describe('image-policy rules file reload', () => {
  let proxy: TestProxy;
  let client: RawClient;
  let registry: Registry;
  let interceptor: ImagePolicyInterceptor;
  let dir: string;
  let file: string;

  beforeEach(async () => {
    registry = new Registry();
    const { deps, bind } = depsForTestProxy('images', registry);
    // A directory of its own, so that only the policy file changes in it.
    dir = makeTempDir('cri-proxy-policy-');
    file = path.join(dir, 'policy.yaml');
    writeFileSync(file, ALLOW_OFFICIAL);
    interceptor = createImagePolicyInterceptor(imagePolicySchema.parse({ rulesFile: file }), deps);
    proxy = await startTestProxy({ entries: [{ interceptor, onError: 'failClosed', methods: undefined }] });
    bind(proxy);
    client = proxy.client();
  });

  afterEach(async () => {
    await interceptor.close();
    await proxy.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const pullCode = async (image: string): Promise<grpc.status> => (await client.unary(PULL, pull(image))).status.code;
  const reloads = async (result: 'applied' | 'rejected'): Promise<number> =>
    (await sample(registry, 'cri_proxy_image_policy_reloads_total', { result })) ?? 0;

  test('a changed file swaps the policy; a call in flight finishes under the old one', async () => {
    proxy.runtime.on('PullImage', { delayMs: 500 });
    const inFlight = client.unary(PULL, pull('busybox:1'));
    await waitFor(() => proxy.runtime.calls.some((c) => c.name === 'PullImage'));
    proxy.runtime.on('PullImage', {});
    writeFileSync(file, BLOCK_BUSYBOX);
    await eventually(async () => (await reloads('applied')) === 1);
    expect(await pullCode('busybox:1')).toBe(grpc.status.PERMISSION_DENIED);
    expect((await inFlight).status.code).toBe(grpc.status.OK);
    const denied = await client.unary(PULL, pull('busybox:1'));
    expect(denied.status.details).toBe(
      `image "docker.io/library/busybox:1" denied by rule "blocked" (cri-proxy image policy ${file}): matches "docker.io/library/busybox"`,
    );
    expect(await pullCode('alpine:3')).toBe(grpc.status.OK);
    expect(interceptor.policy.ruleCount).toBe(2);
  });

  test('a file renamed into place is noticed', async () => {
    const temp = path.join(path.dirname(file), '.policy.yaml.tmp');
    writeFileSync(temp, BLOCK_BUSYBOX.replace('defaultAction: deny', 'mode: audit\ndefaultAction: deny'));
    renameSync(temp, file);
    await eventually(async () => (await reloads('applied')) === 1);
    expect(interceptor.policy.mode).toBe('audit');
    // Audit mode: the denial is counted, the pull goes ahead.
    expect(await pullCode('busybox:1')).toBe(grpc.status.OK);
  });

  test('a bad file keeps the previous policy and is counted; a fixed one applies', async () => {
    writeFileSync(file, ALLOW_OFFICIAL.replace('action: allow', 'action: maybe'));
    await eventually(async () => (await reloads('rejected')) === 1);
    expect(await pullCode('busybox:1')).toBe(grpc.status.OK);
    expect(interceptor.policy.ruleCount).toBe(1);
    writeFileSync(file, 'rules: [');
    await eventually(async () => (await reloads('rejected')) === 2);
    expect(await pullCode('busybox:1')).toBe(grpc.status.OK);
    writeFileSync(file, BLOCK_BUSYBOX);
    await eventually(async () => (await reloads('applied')) === 1);
    expect(await pullCode('busybox:1')).toBe(grpc.status.PERMISSION_DENIED);
    expect(await reloads('rejected')).toBe(2);
  });

  test('after close() the file is no longer watched', async () => {
    // Its own instance, on a clock the test drives: a change it still watched would show as a pending reload.
    const scheduler = new ManualScheduler();
    const { deps, bind: bindOwn } = depsForTestProxy('images-manual', new Registry());
    bindOwn(proxy);
    const watched = createImagePolicyInterceptor(imagePolicySchema.parse({ rulesFile: file }), deps, { scheduler });
    writeFileSync(file, BLOCK_BUSYBOX);
    await waitFor(() => scheduler.pending > 0);
    scheduler.advance(1000);
    expect(watched.policy.ruleCount).toBe(2);

    await watched.close();
    // The test's own watcher tells when the change has been seen by everyone still watching.
    const seen = new Promise<void>((resolve) => {
      const own = watch(dir, () => {
        own.close();
        resolve();
      });
    });
    writeFileSync(file, ALLOW_OFFICIAL);
    await seen;
    await new Promise((resolve) => setImmediate(resolve));
    expect(scheduler.pending).toBe(0);
    scheduler.advance(60_000);
    expect(watched.policy.ruleCount).toBe(2);
  });
});

describe('image-policy in the running proxy', () => {
  test('a config reload (SIGHUP) builds a new instance on the same metrics and swaps the policy', async () => {
    const dir = makeTempDir('cri-proxy-policy-app-');
    const runtime = new FakeRuntime(path.join(dir, 'runtime.sock'));
    await runtime.start();
    const file = path.join(dir, 'policy.yaml');
    writeFileSync(file, ALLOW_OFFICIAL);
    const configWith = (extra: Record<string, unknown>): ProxyConfig => {
      const result = validateProxyConfig(
        {
          listen: `unix://${path.join(dir, 'proxy.sock')}`,
          http: { listen: '' },
          shutdownGraceSeconds: 0,
          backends: [{ name: 'containerd', endpoint: `unix://${runtime.socketPath}` }],
          interceptors: [{ name: 'images', type: 'image-policy', config: { rulesFile: file, ...extra } }],
        },
        builtinTypes(),
      );
      if (!result.ok) throw new Error(JSON.stringify(result.issues));
      return result.config;
    };
    const registry = new Registry();
    const app = await App.start(configWith({}), { log: silentLogger, registry });
    const client = new RawClient(`unix:${app.socketPath}`);
    try {
      expect((await client.unary(PULL, pull('busybox:1'))).status.code).toBe(grpc.status.OK);
      await app.reload(configWith({ defaultAction: 'deny', mode: 'audit' }));
      expect((await client.unary(PULL, pull('quay.io/x/y:1'))).status.code).toBe(grpc.status.OK);
      const samples = (await registry.getSingleMetric('cri_proxy_image_policy_decisions_total')?.get())?.values ?? [];
      expect(samples.map((s) => [s.labels.action, s.labels.mode, s.value])).toEqual([
        ['allow', 'enforce', 1],
        ['deny', 'audit', 1],
      ]);
    } finally {
      client.close();
      await app.stop(0);
      await runtime.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
