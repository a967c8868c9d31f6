import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { App } from '../../src/app';
import type { ProxyConfig } from '../../src/config/schema';
import { silentLogger } from '../../src/log';
import type { PodStartsAnswer, PodStartView } from '../../src/observability/pod-starts-api';
import { appConfig } from '../support/app-config';
import { FakeRuntime } from '../support/fake-runtime';
import { SECRET_SENTINEL, startPod, type PodSpec } from '../support/kubelet';
import { RawClient, makeTempDir } from '../support/proxy-harness';
import { eventually } from '../support/wait';

const NGINX = 'docker.io/library/nginx:1.27';

function configFor(dir: string, runtime: FakeRuntime, extra: Record<string, unknown> = {}): ProxyConfig {
  return appConfig(dir, runtime, { podStarts: { settleMs: 150 }, ...extra });
}

const twoContainers: PodSpec = {
  uid: 'uid-web',
  name: 'web-1',
  namespace: 'shop',
  handler: 'runc',
  sandboxMs: 30,
  kubeletMs: 20,
  containers: [
    { name: 'app', image: NGINX, pullMs: 80, pullBytes: 67_000_000, createMs: 10, startMs: 10 },
    { name: 'sidecar', image: 'registry.example.com/mesh/envoy:1.30', createMs: 10, startMs: 15 },
  ],
};

describe('pod starts in the running proxy (no interceptor configured)', () => {
  let dir: string;
  let runtime: FakeRuntime;
  let app: App | undefined;
  let client: RawClient;

  beforeEach(async () => {
    dir = makeTempDir();
    runtime = new FakeRuntime(path.join(dir, 'runtime.sock'));
    await runtime.start();
  });
  afterEach(async () => {
    client.close();
    await app?.stop(0);
    app = undefined;
    await runtime.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function start(extra: Record<string, unknown> = {}): Promise<App> {
    app = await App.start(configFor(dir, runtime, extra), { log: silentLogger, registry: new Registry() });
    client = new RawClient(`unix:${app.socketPath}`);
    return app;
  }
  const get = (app: App, what: string): Promise<Response> => fetch(`http://${app.adminAddress ?? ''}${what}`);
  const api = async (app: App, query = ''): Promise<PodStartsAnswer> =>
    (await (await get(app, `/api/pods${query}`)).json()) as PodStartsAnswer;
  const started = async (app: App, count: number): Promise<PodStartView[]> => {
    let starts: readonly PodStartView[] = [];
    await eventually(async () => (starts = (await api(app)).podStarts).length >= count);
    return [...starts];
  };

  test('a pod with two containers and an image pull: every phase, in order, with the image, its size and the gaps', async () => {
    const proxy = await start();
    expect(await startPod(client, runtime, twoContainers)).toBe(grpc.status.OK);
    const [pod] = await started(proxy, 1);
    expect(pod).toMatchObject({
      uid: 'uid-web',
      name: 'web-1',
      namespace: 'shop',
      runtimeHandler: 'runc',
      backend: 'containerd',
      sandboxId: 'sb-uid-web',
      status: 'ok',
      code: 'OK',
      containers: 2,
    });
    expect(pod?.totals[pod.dominant]).toBe(Math.max(...Object.values(pod?.totals ?? {})));
    expect(pod?.traceId).toBeUndefined();
    const phases = pod?.phases ?? [];
    expect(phases.map((p) => [p.phase, p.container ?? p.image])).toEqual([
      ['sandbox', undefined],
      ['pull', NGINX],
      ['create', 'app'],
      ['start', 'app'],
      ['create', 'sidecar'],
      ['start', 'sidecar'],
    ]);
    expect(phases[1]).toMatchObject({ image: NGINX, bytes: 67_000_000, code: 'OK' });
    expect(phases[2]).toMatchObject({ image: NGINX, imagePresent: false });
    expect(phases[4]).toMatchObject({ image: 'registry.example.com/mesh/envoy:1.30', imagePresent: true });
    expect(phases[0]?.durationMs).toBeGreaterThanOrEqual(30);
    expect(phases[1]?.durationMs).toBeGreaterThanOrEqual(80);
    for (let i = 1; i < phases.length; i++) {
      const before = phases[i - 1];
      expect(phases[i]?.offsetMs).toBeGreaterThanOrEqual((before?.offsetMs ?? 0) + (before?.durationMs ?? 0));
    }
    // kubelet's time: the gaps between the calls, which with the phases make up the whole start.
    expect(pod?.gaps.length).toBeGreaterThanOrEqual(2);
    const covered = phases.reduce((s, p) => s + p.durationMs, 0) + (pod?.gaps ?? []).reduce((s, g) => s + g.durationMs, 0);
    expect(covered).toBeCloseTo(pod?.totalMs ?? 0, 1);
    expect(pod?.totals.kubelet).toBeGreaterThanOrEqual(2 * 20);
    const last = phases[5];
    expect((last?.offsetMs ?? 0) + (last?.durationMs ?? 0)).toBeCloseTo(pod?.totalMs ?? 0, 1);
  });

  test('with tracing on, each pod start shows its trace ID; across a reload it is reported once', async () => {
    const registry = new Registry();
    const interceptors = [
      { name: 'tracing', type: 'tracing', onError: 'failOpen' },
      { name: 'metrics', type: 'metrics', onError: 'failOpen' },
    ];
    // The old generation's interceptors stay open for the grace period, as on a node.
    const config = { interceptors, shutdownGraceSeconds: 5 };
    app = await App.start(configFor(dir, runtime, config), { log: silentLogger, registry });
    client = new RawClient(`unix:${app.socketPath}`);
    const proxy = app;
    // A reload lands between the pod's calls: the new generation's interceptors report it, the old ones do not.
    const pod: PodSpec = {
      uid: 'uid-t',
      name: 'traced',
      namespace: 'shop',
      containers: [{ name: 'a', image: 'busybox:1' }],
      beforeStart: () => proxy.reload(configFor(dir, runtime, config)),
    };
    expect(await startPod(client, runtime, pod)).toBe(grpc.status.OK);
    const [traced] = await started(proxy, 1);
    expect(traced?.traceId).toMatch(/^[0-9a-f]{32}$/);
    const text = await (await get(proxy, '/metrics')).text();
    expect(text).toMatch(/^cri_proxy_pod_start_duration_seconds_count\{runtime_handler="default"\} 1$/m);
  });

  test('a failed start: the failed call, its gRPC code and message', async () => {
    const proxy = await start();
    const failSandbox = { code: grpc.status.UNKNOWN, message: 'failed to set up network for sandbox: plugin bridge failed' };
    expect(await startPod(client, runtime, { uid: 'uid-bad', name: 'bad-1', namespace: 'shop', failSandbox, containers: [] })).toBe(
      grpc.status.UNKNOWN,
    );
    const failStart = { code: grpc.status.DEADLINE_EXCEEDED, message: 'context deadline exceeded' };
    const spec: PodSpec = {
      uid: 'uid-slow',
      name: 'slow-1',
      namespace: 'batch',
      containers: [{ name: 'job', image: 'busybox:1', failStart }],
    };
    expect(await startPod(client, runtime, spec)).toBe(grpc.status.DEADLINE_EXCEEDED);
    const starts = await started(proxy, 2);
    const bad = starts.find((s) => s.uid === 'uid-bad');
    expect(bad).toMatchObject({ status: 'failed', code: 'UNKNOWN', message: failSandbox.message, containers: 0 });
    expect(bad?.phases).toEqual([expect.objectContaining({ phase: 'sandbox', code: 'UNKNOWN', message: failSandbox.message })]);
    const slow = starts.find((s) => s.uid === 'uid-slow');
    expect(slow).toMatchObject({ status: 'failed', code: 'DEADLINE_EXCEEDED', message: 'context deadline exceeded' });
    expect(slow?.phases.map((p) => [p.phase, p.code])).toEqual([
      ['sandbox', 'OK'],
      ['create', 'OK'],
      ['start', 'DEADLINE_EXCEEDED'],
    ]);
    const failedOnly = await api(proxy, '?namespace=batch&sort=slowest');
    expect(failedOnly.podStarts.map((s) => s.uid)).toEqual(['uid-slow']);
    expect(failedOnly.namespaces).toEqual(['batch', 'shop']);
  });

  test('filters, sort and limit; a bad parameter is a 400 naming it', async () => {
    const proxy = await start();
    await startPod(client, runtime, { uid: 'u-fast', name: 'fast', namespace: 'a', containers: [{ name: 'c', image: 'busybox:1' }] });
    await startPod(client, runtime, {
      uid: 'u-slow',
      name: 'slow',
      namespace: 'b',
      sandboxMs: 120,
      containers: [{ name: 'c', image: 'busybox:1' }],
    });
    await started(proxy, 2);
    expect((await api(proxy, '?sort=slowest')).podStarts.map((s) => s.uid)).toEqual(['u-slow', 'u-fast']);
    expect((await api(proxy, '?sort=newest&limit=1')).podStarts.map((s) => s.uid)).toEqual(['u-slow']);
    expect((await api(proxy, '?min=100ms')).podStarts.map((s) => s.uid)).toEqual(['u-slow']);
    expect((await api(proxy, '?namespace=a')).podStarts.map((s) => s.uid)).toEqual(['u-fast']);
    expect((await api(proxy, '?since=1h')).matched).toBe(2);
    expect((await api(proxy, `?since=${new Date(Date.now() + 60_000).toISOString()}`)).matched).toBe(0);
    for (const [query, name] of [
      ['?min=5', 'min'],
      ['?sort=fastest', 'sort'],
      ['?limit=0', 'limit'],
      ['?since=yesterday', 'since'],
    ]) {
      const response = await get(proxy, `/api/pods${query}`);
      expect(response.status).toBe(400);
      expect(((await response.json()) as { error: string }).error).toMatch(new RegExp(`^${name}: `));
    }
  });

  test('names, images, timings and error messages only: never environment, args, labels, annotations or credentials', async () => {
    const proxy = await start();
    await startPod(client, runtime, twoContainers);
    await started(proxy, 1);
    const json = await (await get(proxy, '/api/pods')).text();
    expect(json).toContain('web-1');
    expect(json).toContain(NGINX);
    expect(json).not.toContain(SECRET_SENTINEL);
    const page = await get(proxy, '/pods');
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(await page.text()).not.toContain(SECRET_SENTINEL);
  });

  test('the page is one self-contained document: no external script, style, font or image', async () => {
    const proxy = await start();
    const page = await get(proxy, '/pods');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const html = await page.text();
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).not.toMatch(/<(script|link|img)[^>]+(src|href)="(https?:)?\/\//i);
    expect(html).not.toMatch(/@import|url\(/);
  });

  test('podStarts.enabled: false keeps nothing and serves neither page nor API; calls go on as before', async () => {
    const proxy = await start({ podStarts: { enabled: false } });
    expect(await startPod(client, runtime, twoContainers)).toBe(grpc.status.OK);
    expect((await get(proxy, '/api/pods')).status).toBe(404);
    expect((await get(proxy, '/pods')).status).toBe(404);
  });

  test("a lifecycle request that does not decode is still the runtime's to judge: forwarded as it came", async () => {
    await start();
    runtime.on('RunPodSandbox', { respond: Buffer.alloc(0) });
    const garbage = Buffer.from([0x0a, 0xff, 0xff, 0xff]);
    const result = await client.unary('/runtime.v1.RuntimeService/RunPodSandbox', garbage);
    expect(result.status.code).toBe(grpc.status.OK);
    expect(runtime.calls.find((c) => c.name === 'RunPodSandbox')?.requestBytes).toEqual(garbage);
  });
});
