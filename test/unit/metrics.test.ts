import { fakeCallContext } from '../support/fake-context';
import { Counter, Gauge, Registry } from 'prom-client';
import { createMetricsInterceptor, metricsConfigSchema } from '../../src/interceptors/metrics';
import { DEFAULT_BUCKETS } from '../../src/interceptors/metrics/call-metrics';
import { silentLogger } from '../../src/log';
import { Router } from '../../src/proxy/router';
import type { CallContext, CallOutcome, Interceptor } from '../../src/chain/types';
import type { BackendHealth } from '../../src/chain/backends';
import { Upstream } from '../../src/proxy/upstream';

function upstream(name: string, health: BackendHealth): Upstream {
  const u = new Upstream({
    name,
    socketPath: `/nonexistent/${name}.sock`,
    connectTimeoutMs: 100,
    maxMessageBytes: 1024,
    log: silentLogger,
  });
  Object.defineProperty(u, 'status', { value: health });
  return u;
}

const UP: BackendHealth = { up: true, lastError: undefined, lastErrorAt: undefined };

function create(registry: Registry, config: unknown = {}, router = new Router([upstream('a', UP)], 'a')): Interceptor {
  return createMetricsInterceptor(metricsConfigSchema.parse(config), { name: 'metrics', log: silentLogger, registry, router });
}

/** Just enough of a call for the interceptor: `next` sets an OK outcome as forwarding would. */
function fakeCall(path: string, overrides: Partial<CallContext> = {}): { ctx: CallContext; next: () => Promise<void> } {
  const state = { outcome: undefined as CallOutcome | undefined, backend: undefined as string | undefined };
  const ctx = {
    ...fakeCallContext(path),
    get backend() {
      return state.backend;
    },
    set backend(b: string | undefined) {
      state.backend = b;
    },
    get outcome() {
      return state.outcome;
    },
    upstreamNanos: 1000n,
    ...overrides,
  } satisfies CallContext;
  const next = (): Promise<void> => {
    state.backend = 'a';
    state.outcome = { code: 0, message: '', fromProxy: false };
    return Promise.resolve();
  };
  return { ctx, next };
}

/** Histogram samples carry their full name (`x_bucket`, `x_sum`, `x_count`); the base type does not declare it. */
function metricNameOf(v: object): string | undefined {
  return 'metricName' in v && typeof v.metricName === 'string' ? v.metricName : undefined;
}

async function value(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const values = (await registry.getSingleMetric(name)?.get())?.values ?? [];
  return values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value;
}

describe('metrics interceptor config', () => {
  test('defaults: default buckets, pod start metrics on', () => {
    const buckets = [...DEFAULT_BUCKETS];
    expect(metricsConfigSchema.parse({})).toEqual({ buckets, podStart: { enabled: true } });
    expect(metricsConfigSchema.parse({ podStart: { enabled: false } })).toEqual({ buckets, podStart: { enabled: false } });
  });

  test.each([
    [{ bucket: [1] }, ''],
    [{ buckets: [] }, 'buckets'],
    [{ buckets: [0.1, 0.1] }, 'buckets'],
    [{ buckets: [-1] }, 'buckets.0'],
    [{ podStart: { enabled: true, settle: 5 } }, 'podStart'],
    [{ podStart: { maxPods: 10 } }, 'podStart.maxPods'],
    [{ podStart: { ttlMs: 60_000 } }, 'podStart.ttlMs'],
  ])('rejects %j at "%s"', (config, path) => {
    const result = metricsConfigSchema.safeParse(config);
    expect(result.success).toBe(false);
    expect(result.error?.issues.map((i) => i.path.join('.'))).toContain(path);
  });
});

describe('metrics interceptor on a shared registry (config reload)', () => {
  const closing: Interceptor[] = [];
  afterEach(async () => {
    for (const i of closing.splice(0)) await i.close?.();
  });

  test('a second instance reuses the metrics: no throw, counts carry on', async () => {
    const registry = new Registry();
    const first = create(registry);
    closing.push(first);
    const call = fakeCall('/runtime.v1.RuntimeService/Version');
    await first.intercept(call.ctx, call.next);
    const counter = registry.getSingleMetric('cri_proxy_calls_total');
    const second = create(registry);
    closing.push(second);
    expect(registry.getSingleMetric('cri_proxy_calls_total')).toBe(counter);
    const again = fakeCall('/runtime.v1.RuntimeService/Version');
    await second.intercept(again.ctx, again.next);
    expect(await value(registry, 'cri_proxy_calls_total', { method: 'Version', code: 'OK', backend: 'a' })).toBe(2);
  });

  test('changed buckets replace the histogram; other metrics stay', async () => {
    const registry = new Registry();
    closing.push(create(registry));
    const counter = registry.getSingleMetric('cri_proxy_calls_total');
    const histogram = registry.getSingleMetric('cri_proxy_call_duration_seconds');
    const second = create(registry, { buckets: [0.1, 1] });
    closing.push(second);
    expect(registry.getSingleMetric('cri_proxy_calls_total')).toBe(counter);
    expect(registry.getSingleMetric('cri_proxy_call_duration_seconds')).not.toBe(histogram);
    const call = fakeCall('/runtime.v1.RuntimeService/Version');
    await second.intercept(call.ctx, call.next);
    const values = (await registry.getSingleMetric('cri_proxy_call_duration_seconds')?.get())?.values ?? [];
    expect(values.filter((v) => metricNameOf(v)?.endsWith('_bucket') === true).map((v) => v.labels.le)).toEqual([0.1, 1, '+Inf']);
  });

  test('a foreign metric under one of its names is replaced rather than reused', () => {
    const registry = new Registry();
    new Gauge({ name: 'cri_proxy_calls_total', help: 'not ours', registers: [registry] });
    closing.push(create(registry));
    expect(registry.getSingleMetric('cri_proxy_calls_total')).toBeInstanceOf(Counter);
  });

  test('backend gauges follow the newest instance’s router and vanish when it closes', async () => {
    const registry = new Registry();
    const old = create(registry, {}, new Router([upstream('a', UP)], 'a'));
    const down: BackendHealth = { up: false, lastError: 'refused', lastErrorAt: 1_700_000_000_000 };
    const idle: BackendHealth = { up: false, lastError: undefined, lastErrorAt: undefined };
    const current = create(registry, {}, new Router([upstream('b', down), upstream('c', idle)], 'b'));
    expect(await value(registry, 'cri_proxy_backend_up', { backend: 'a' })).toBeUndefined();
    expect(await value(registry, 'cri_proxy_backend_up', { backend: 'b' })).toBe(0);
    // Never contacted: no sample rather than a 0 that would page.
    expect(await value(registry, 'cri_proxy_backend_up', { backend: 'c' })).toBeUndefined();
    expect(await value(registry, 'cri_proxy_backend_last_error_timestamp_seconds', { backend: 'b' })).toBe(1_700_000_000);
    await old.close?.();
    expect(await value(registry, 'cri_proxy_backend_up', { backend: 'b' })).toBe(0);
    await current.close?.();
    expect((await registry.getSingleMetric('cri_proxy_backend_up')?.get())?.values).toEqual([]);
  });
});

describe('metrics interceptor never disturbs a call', () => {
  test('a failure while recording is swallowed; next() runs once and the outcome stands', async () => {
    const registry = new Registry();
    const interceptor = create(registry, { podStart: { enabled: false } });
    const call = fakeCall('/runtime.v1.RuntimeService/GetContainerEvents', {
      onResponseMessage: () => {
        throw new Error('boom');
      },
    });
    let forwarded = 0;
    await interceptor.intercept(call.ctx, () => {
      forwarded++;
      return call.next();
    });
    expect(forwarded).toBe(1);
    expect(call.ctx.outcome?.code).toBe(0);
    expect(await value(registry, 'cri_proxy_calls_in_flight', { method: 'GetContainerEvents' })).toBeUndefined();
    await interceptor.close?.();
  });

  test('a rejection from next() passes through unchanged', async () => {
    const registry = new Registry();
    const interceptor = create(registry, { podStart: { enabled: false } });
    const call = fakeCall('/runtime.v1.RuntimeService/Version');
    const error = new Error('downstream');
    await expect(interceptor.intercept(call.ctx, () => Promise.reject(error))).rejects.toBe(error);
    expect(await value(registry, 'cri_proxy_calls_total', { code: 'INTERNAL', backend: 'none' })).toBe(1);
    expect(await value(registry, 'cri_proxy_calls_in_flight', { method: 'Version' })).toBe(0);
    await interceptor.close?.();
  });
});
