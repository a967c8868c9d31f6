import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { createMetricsInterceptor, metricsConfigSchema } from '../../src/interceptors/metrics';
import { silentLogger } from '../../src/log';
import type { ChainEntry } from '../../src/chain/chain';
import { encodeMessage } from '../../src/messages/codec';
import type { Interceptor } from '../../src/chain/types';
import { sample } from '../support/metric-samples';
import { testPodStarts, type TestPodStarts } from '../support/pod-starts';
import { startTestProxy, type RawClient, type TestProxy } from '../support/proxy-harness';

const RUNTIME = '/runtime.v1.RuntimeService';
const IMAGE = '/runtime.v1.ImageService';

/** Polls an async condition (metrics are read asynchronously); fails after `timeoutMs`. */
async function eventually(check: () => Promise<boolean>, timeoutMs = 3000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

const msg = (type: string, body: Record<string, unknown>): Buffer => encodeMessage(`runtime.v1.${type}`, body);

interface Pod {
  readonly uid: string;
  readonly handler: string;
  readonly sandboxId: string;
  readonly containerId: string;
  readonly pull: boolean;
}

describe('metrics interceptor: pod starts and image pulls', () => {
  let proxy: TestProxy;
  let client: RawClient;
  let registry: Registry;
  let interceptor: Interceptor;
  let feedSetup: TestPodStarts;

  beforeEach(async () => {
    feedSetup = testPodStarts({ settleMs: 50 });
    const slot: { interceptor?: Interceptor } = {};
    const entry: ChainEntry = {
      interceptor: { name: 'metrics', intercept: (ctx, next) => (slot.interceptor as Interceptor).intercept(ctx, next) },
      onError: 'failOpen',
      methods: undefined,
    };
    proxy = await startTestProxy({ entries: [entry], observer: feedSetup.feed.observer(feedSetup.subscribers) });
    client = proxy.client();
    registry = new Registry();
    const config = metricsConfigSchema.parse({});
    const deps = { name: 'metrics', log: silentLogger, registry, router: proxy.router, podStarts: feedSetup.subscribers };
    interceptor = createMetricsInterceptor(config, deps);
    slot.interceptor = interceptor;
  });
  afterEach(async () => {
    feedSetup.feed.close();
    await interceptor.close?.();
    await proxy.close();
  });

  /** What kubelet sends for a one-container pod; the fake answers with the ids the pod names. */
  async function startPod(pod: Pod): Promise<void> {
    const metadata = { name: `pod-${pod.uid}`, namespace: 'default', uid: pod.uid };
    proxy.runtime.on('RunPodSandbox', { delayMs: 20, respond: msg('RunPodSandboxResponse', { pod_sandbox_id: pod.sandboxId }) });
    proxy.runtime.on('CreateContainer', { respond: msg('CreateContainerResponse', { container_id: pod.containerId }) });
    const ok = async (path: string, body: Buffer): Promise<void> => {
      expect((await client.unary(path, body)).status.code).toBe(grpc.status.OK);
    };
    await ok(`${RUNTIME}/RunPodSandbox`, msg('RunPodSandboxRequest', { config: { metadata }, runtime_handler: pod.handler }));
    if (pod.pull) {
      await ok(`${IMAGE}/PullImage`, msg('PullImageRequest', { image: { image: 'nginx:1' }, sandbox_config: { metadata } }));
    }
    await ok(
      `${RUNTIME}/CreateContainer`,
      msg('CreateContainerRequest', {
        pod_sandbox_id: pod.sandboxId,
        config: { metadata: { name: 'app' }, image: { image: 'nginx:1' } },
        sandbox_config: { metadata },
      }),
    );
    await ok(`${RUNTIME}/StartContainer`, msg('StartContainerRequest', { container_id: pod.containerId }));
  }

  const podStarts = (handler: string): Promise<number | undefined> =>
    sample(registry, 'cri_proxy_pod_start_duration_seconds', { runtime_handler: handler }, '_count');
  const phase = (name: string, handler: string, suffix: string): Promise<number | undefined> =>
    sample(registry, 'cri_proxy_pod_start_phase_duration_seconds', { phase: name, runtime_handler: handler }, suffix);

  test('a pod start is observed exactly once, with each phase by runtime handler', async () => {
    proxy.runtime.on('PullImage', { delayMs: 30, respond: msg('PullImageResponse', { image_ref: 'sha256:aaa' }) });
    await startPod({ uid: 'u1', handler: 'kata', sandboxId: 'sb-1', containerId: 'ctr-1', pull: true });
    await eventually(async () => (await podStarts('kata')) === 1);
    // Closing reports every pod start still waiting for its quiet period: nothing more is counted for the same pod.
    feedSetup.feed.close();
    expect(await podStarts('kata')).toBe(1);
    const total = (await sample(registry, 'cri_proxy_pod_start_duration_seconds', { runtime_handler: 'kata' }, '_sum')) ?? 0;
    for (const name of ['sandbox', 'pull', 'create', 'start']) expect(await phase(name, 'kata', '_count')).toBe(1);
    expect(await phase('sandbox', 'kata', '_sum')).toBeGreaterThanOrEqual(0.02);
    expect(await phase('pull', 'kata', '_sum')).toBeGreaterThanOrEqual(0.03);
    let phases = 0;
    for (const name of ['sandbox', 'pull', 'create', 'start']) phases += (await phase(name, 'kata', '_sum')) ?? 0;
    expect(total).toBeGreaterThanOrEqual(phases);
  });

  test('a pod without a pull has no pull phase; the empty handler reads "default"', async () => {
    await startPod({ uid: 'u2', handler: '', sandboxId: 'sb-2', containerId: 'ctr-2', pull: false });
    await eventually(async () => (await podStarts('default')) === 1);
    expect(await podStarts('default')).toBe(1);
    expect(await phase('sandbox', 'default', '_count')).toBe(1);
    expect(await phase('pull', 'default', '_count')).toBeUndefined();
  });

  test('a failed sandbox is not a pod start', async () => {
    proxy.runtime.on('RunPodSandbox', { fail: { code: grpc.status.UNKNOWN, message: 'cni failed' } });
    const metadata = { name: 'p', namespace: 'default', uid: 'u3' };
    const result = await client.unary(`${RUNTIME}/RunPodSandbox`, msg('RunPodSandboxRequest', { config: { metadata } }));
    expect(result.status.code).toBe(grpc.status.UNKNOWN);
    feedSetup.feed.close();
    expect(await podStarts('default')).toBeUndefined();
  });

  test('pull durations by code; bytes from the ImageStatus that follows a pull, once', async () => {
    proxy.runtime.on('PullImage', { respond: msg('PullImageResponse', { image_ref: 'sha256:bbb' }) });
    const status = msg('ImageStatusResponse', { image: { id: 'sha256:bbb', size: '12345678' } });
    proxy.runtime.on('ImageStatus', { respond: status });
    const pull = msg('PullImageRequest', { image: { image: 'nginx:1' } });
    const statusRequest = msg('ImageStatusRequest', { image: { image: 'nginx:1' } });

    // Before any pull, an ImageStatus is not a pulled image's size.
    await client.unary(`${IMAGE}/ImageStatus`, statusRequest);
    expect(await sample(registry, 'cri_proxy_image_pull_bytes', {}, '_count')).toBe(0);

    expect((await client.unary(`${IMAGE}/PullImage`, pull)).status.code).toBe(grpc.status.OK);
    await client.unary(`${IMAGE}/ImageStatus`, statusRequest);
    await client.unary(`${IMAGE}/ImageStatus`, statusRequest);
    expect(await sample(registry, 'cri_proxy_image_pull_duration_seconds', { code: 'OK' }, '_count')).toBe(1);
    expect(await sample(registry, 'cri_proxy_image_pull_bytes', {}, '_count')).toBe(1);
    expect(await sample(registry, 'cri_proxy_image_pull_bytes', {}, '_sum')).toBe(12345678);

    proxy.runtime.on('PullImage', { fail: { code: grpc.status.NOT_FOUND, message: 'manifest unknown' } });
    expect((await client.unary(`${IMAGE}/PullImage`, pull)).status.code).toBe(grpc.status.NOT_FOUND);
    expect(await sample(registry, 'cri_proxy_image_pull_duration_seconds', { code: 'NOT_FOUND' }, '_count')).toBe(1);
    expect(await sample(registry, 'cri_proxy_image_pull_bytes', {}, '_count')).toBe(1);
  });
});
