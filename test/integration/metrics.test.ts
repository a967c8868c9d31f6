import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { ProxyError } from '../../src/errors';
import { createMetricsInterceptor, metricsConfigSchema } from '../../src/interceptors/metrics';
import { silentLogger } from '../../src/log';
import type { ChainEntry } from '../../src/chain/chain';
import { encodeMessage } from '../../src/messages/codec';
import type { Interceptor } from '../../src/chain/types';
import { sample, type Labels } from '../support/metric-samples';
import { startTestProxy, type RawClient, type TestProxy } from '../support/proxy-harness';
import { waitFor } from '../support/wait';

const VERSION = '/runtime.v1.RuntimeService/Version';
const RUNTIME = 'runtime.v1.RuntimeService';

async function labelSets(registry: Registry, name: string): Promise<Labels[]> {
  const values = (await registry.getSingleMetric(name)?.get())?.values ?? [];
  return values.map((v) => Object.fromEntries(Object.entries(v.labels).map(([k, x]) => [k, String(x)])));
}

interface Setup {
  readonly proxy: TestProxy;
  readonly client: RawClient;
  readonly registry: Registry;
  readonly interceptor: Interceptor;
}

/** The interceptor needs the harness's router, which exists only once the proxy runs: a forwarding entry. */
async function startWithMetrics(config: unknown = {}, inner: readonly ChainEntry[] = []): Promise<Setup> {
  const slot: { interceptor?: Interceptor } = {};
  const entry: ChainEntry = {
    interceptor: { name: 'metrics', intercept: (ctx, next) => (slot.interceptor as Interceptor).intercept(ctx, next) },
    onError: 'failOpen',
    methods: undefined,
  };
  const proxy = await startTestProxy({ entries: [entry, ...inner] });
  const registry = new Registry();
  const interceptor = createMetricsInterceptor(metricsConfigSchema.parse(config), {
    name: 'metrics',
    log: silentLogger,
    registry,
    router: proxy.router,
  });
  slot.interceptor = interceptor;
  return { proxy, client: proxy.client(), registry, interceptor };
}

describe('metrics interceptor', () => {
  let setup: Setup;
  afterEach(async () => {
    await setup.interceptor.close?.();
    await setup.proxy.close();
  });

  test('counts calls by method, gRPC code name and backend', async () => {
    setup = await startWithMetrics();
    const { client, registry, proxy } = setup;
    proxy.runtime.on('ContainerStatus', { fail: { code: grpc.status.NOT_FOUND, message: 'no such container' } });
    for (let i = 0; i < 3; i++) expect((await client.unary(VERSION, Buffer.alloc(0))).status.code).toBe(grpc.status.OK);
    const status = encodeMessage('runtime.v1.ContainerStatusRequest', { container_id: 'c1' });
    expect((await client.unary(`/${RUNTIME}/ContainerStatus`, status)).status.code).toBe(grpc.status.NOT_FOUND);

    const ok = { service: RUNTIME, method: 'Version', code: 'OK', backend: 'fake' };
    expect(await sample(registry, 'cri_proxy_calls_total', ok)).toBe(3);
    expect(await sample(registry, 'cri_proxy_call_duration_seconds', ok, '_count')).toBe(3);
    const notFound = { method: 'ContainerStatus', code: 'NOT_FOUND', backend: 'fake' };
    expect(await sample(registry, 'cri_proxy_calls_total', notFound)).toBe(1);
    expect(await sample(registry, 'cri_proxy_calls_total', { method: 'Version', code: 'NOT_FOUND' })).toBeUndefined();
  });

  test('the proxy’s own errors and denials are counted with their codes', async () => {
    const deny: ChainEntry = {
      interceptor: {
        name: 'deny',
        intercept: (ctx, next) => (ctx.method.name === 'RemoveImage' ? Promise.reject(new ProxyError('POLICY_DENIED', 'no')) : next()),
      },
      onError: 'failClosed',
      methods: undefined,
    };
    setup = await startWithMetrics({}, [deny]);
    const { client, registry, proxy } = setup;
    expect((await client.unary('/runtime.v1.ImageService/RemoveImage', Buffer.alloc(0))).status.code).toBe(grpc.status.PERMISSION_DENIED);
    const denied = { method: 'RemoveImage', code: 'PERMISSION_DENIED', backend: 'none' };
    expect(await sample(registry, 'cri_proxy_calls_total', denied)).toBe(1);
    // Never reached the runtime: no runtime time, all of it the proxy's.
    expect(await sample(registry, 'cri_proxy_runtime_duration_seconds', { method: 'RemoveImage' }, '_count')).toBeUndefined();
    expect(await sample(registry, 'cri_proxy_overhead_seconds', { method: 'RemoveImage' }, '_count')).toBe(1);

    await proxy.runtime.stop();
    expect((await client.unary(VERSION, Buffer.alloc(0))).status.code).toBe(grpc.status.UNAVAILABLE);
    expect(await sample(registry, 'cri_proxy_calls_total', { method: 'Version', code: 'UNAVAILABLE', backend: 'fake' })).toBe(1);
  });

  test('overhead plus runtime time adds up to the call duration', async () => {
    setup = await startWithMetrics();
    const { client, registry, proxy } = setup;
    proxy.runtime.on('Version', { delayMs: 30 });
    for (let i = 0; i < 3; i++) await client.unary(VERSION, Buffer.alloc(0));
    const labels = { method: 'Version' };
    const total = (await sample(registry, 'cri_proxy_call_duration_seconds', labels, '_sum')) ?? Number.NaN;
    const runtime = (await sample(registry, 'cri_proxy_runtime_duration_seconds', labels, '_sum')) ?? Number.NaN;
    const overhead = (await sample(registry, 'cri_proxy_overhead_seconds', labels, '_sum')) ?? Number.NaN;
    expect(runtime).toBeGreaterThanOrEqual(0.09);
    expect(overhead).toBeGreaterThan(0);
    expect(Math.abs(runtime + overhead - total)).toBeLessThan(1e-6);
    expect(await sample(registry, 'cri_proxy_runtime_duration_seconds', { ...labels, backend: 'fake' }, '_count')).toBe(3);
  });

  test('in-flight rises during a call and returns to zero', async () => {
    setup = await startWithMetrics();
    const { client, registry, proxy } = setup;
    proxy.runtime.on('ListContainers', { delayMs: 300 });
    const labels = { service: RUNTIME, method: 'ListContainers' };
    const pending = [
      client.unary(`/${RUNTIME}/ListContainers`, Buffer.alloc(0)),
      client.unary(`/${RUNTIME}/ListContainers`, Buffer.alloc(0)),
    ];
    await waitFor(() => proxy.runtime.calls.length === 2);
    expect(await sample(registry, 'cri_proxy_calls_in_flight', labels)).toBe(2);
    await Promise.all(pending);
    expect(await sample(registry, 'cri_proxy_calls_in_flight', labels)).toBe(0);
  });

  test('stream messages are counted for server-streaming calls', async () => {
    setup = await startWithMetrics();
    const { client, registry, proxy } = setup;
    proxy.runtime.on('GetContainerEvents', {
      *stream() {
        for (let i = 0; i < 5; i++) yield encodeMessage('runtime.v1.ContainerEventResponse', { container_id: `c${i}` });
      },
    });
    const stream = client.serverStream(`/${RUNTIME}/GetContainerEvents`, Buffer.alloc(0));
    let received = 0;
    stream.on('data', () => received++);
    const status = await new Promise<grpc.StatusObject>((resolve) => stream.on('status', resolve));
    expect(status.code).toBe(grpc.status.OK);
    expect(received).toBe(5);
    expect(await sample(registry, 'cri_proxy_stream_messages_total', { method: 'GetContainerEvents' })).toBe(5);
    expect(await sample(registry, 'cri_proxy_calls_total', { method: 'GetContainerEvents', code: 'OK' })).toBe(1);
    // Unary calls have no stream series at all.
    await client.unary(VERSION, Buffer.alloc(0));
    expect((await labelSets(registry, 'cri_proxy_stream_messages_total')).map((l) => l.method)).toEqual(['GetContainerEvents']);
  });

  test('backend up and last error follow the runtime going away and coming back', async () => {
    setup = await startWithMetrics();
    const { client, registry, proxy } = setup;
    // Not contacted yet: neither up nor down.
    expect(await sample(registry, 'cri_proxy_backend_up', { backend: 'fake' })).toBeUndefined();
    await client.unary(VERSION, Buffer.alloc(0));
    expect(await sample(registry, 'cri_proxy_backend_up', { backend: 'fake' })).toBe(1);
    expect(await sample(registry, 'cri_proxy_backend_last_error_timestamp_seconds', { backend: 'fake' })).toBeUndefined();

    const before = Date.now() / 1000;
    await proxy.runtime.stop();
    await client.unary(VERSION, Buffer.alloc(0));
    expect(await sample(registry, 'cri_proxy_backend_up', { backend: 'fake' })).toBe(0);
    const lastError = (await sample(registry, 'cri_proxy_backend_last_error_timestamp_seconds', { backend: 'fake' })) ?? 0;
    expect(lastError).toBeGreaterThanOrEqual(Math.floor(before));
    expect(lastError).toBeLessThanOrEqual(Date.now() / 1000 + 1);

    await proxy.runtime.start();
    expect((await client.unary(VERSION, Buffer.alloc(0))).status.code).toBe(grpc.status.OK);
    expect(await sample(registry, 'cri_proxy_backend_up', { backend: 'fake' })).toBe(1);
  });

  test('paths a client makes up collapse into one unknown series', async () => {
    setup = await startWithMetrics();
    const { client, registry } = setup;
    for (let i = 0; i < 20; i++) {
      expect((await client.unary(`/evil.Service${i}/Method${i}`, Buffer.alloc(0))).status.code).toBe(grpc.status.UNIMPLEMENTED);
    }
    const unknown = { service: 'unknown', method: 'unknown', code: 'UNIMPLEMENTED', backend: 'fake' };
    expect(await sample(registry, 'cri_proxy_calls_total', unknown)).toBe(20);
    for (const name of [
      'cri_proxy_calls_total',
      'cri_proxy_call_duration_seconds',
      'cri_proxy_overhead_seconds',
      'cri_proxy_calls_in_flight',
    ]) {
      const sets = await labelSets(registry, name);
      expect(sets.some((l) => Object.values(l).some((v) => v.includes('evil')))).toBe(false);
    }
    expect(await labelSets(registry, 'cri_proxy_calls_total')).toHaveLength(1);
  });
});
