import * as grpc from '@grpc/grpc-js';
import type { HrTime } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { Registry } from 'prom-client';
import { createTracingInterceptor } from '../../src/interceptors/tracing';
import { silentLogger } from '../../src/log';
import { decodeMessage, encodeMessage } from '../../src/messages/codec';
import { Router } from '../../src/proxy/router';
import type { Interceptor } from '../../src/chain/types';
import { Upstream } from '../../src/proxy/upstream';
import { startTestProxy, type RawClient, type TestProxy } from '../support/proxy-harness';
import { testPodStarts, type TestPodStarts } from '../support/pod-starts';
import { waitFor } from '../support/wait';
import { tracingConfigSchema } from '../../src/interceptors/tracing/config';

const RUNTIME = '/runtime.v1.RuntimeService/';
const IMAGE = '/runtime.v1.ImageService/';
const NGINX = 'docker.io/library/nginx:1.27';
const KUBELET_TRACE = '0af7651916cd43dd8448eb211c80319c';

function unusedRouter(): Router {
  const upstream = new Upstream({
    name: 'unused',
    socketPath: '/nonexistent.sock',
    connectTimeoutMs: 1,
    maxMessageBytes: 1024,
    log: silentLogger,
  });
  return new Router([upstream], 'unused');
}

const ns = (t: HrTime): bigint => BigInt(t[0]) * 1_000_000_000n + BigInt(t[1]);
const durationMs = (s: ReadableSpan): number => Number(ns(s.endTime) - ns(s.startTime)) / 1e6;

interface Setup {
  readonly proxy: TestProxy;
  readonly client: RawClient;
  readonly exporter: InMemorySpanExporter;
  readonly interceptor: Interceptor;
  readonly podStarts: TestPodStarts;
}

async function start(options: { enabled?: boolean; maxStarting?: number } = {}): Promise<Setup> {
  const exporter = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const config = tracingConfigSchema.parse({ podStart: { enabled: options.enabled ?? true } });
  const podStarts = testPodStarts({ settleMs: 50, ...(options.maxStarting === undefined ? {} : { maxStarting: options.maxStarting }) });
  const interceptor = createTracingInterceptor(config, {
    name: 'tracing',
    log: silentLogger,
    registry: new Registry(),
    router: unusedRouter(),
    tracerProvider,
    podStarts: podStarts.subscribers,
  });
  const proxy = await startTestProxy({
    entries: [{ interceptor, onError: 'failClosed', methods: undefined }],
    observer: podStarts.feed.observer(podStarts.subscribers),
  });
  const { runtime } = proxy;
  runtime.on('RunPodSandbox', {
    delayMs: 10,
    respond: (call) => encodeMessage('runtime.v1.RunPodSandboxResponse', { pod_sandbox_id: `sandbox-${uidOf(call.requestBytes)}` }),
  });
  runtime.on('PullImage', { delayMs: 30, respond: encodeMessage('runtime.v1.PullImageResponse', { image_ref: 'sha256:4b7a3f2c' }) });
  runtime.on('CreateContainer', {
    delayMs: 5,
    respond: (call) => {
      const request = decodeMessage('runtime.v1.CreateContainerRequest', call.requestBytes) as {
        config?: { metadata?: { name?: string } };
        pod_sandbox_id?: string;
      };
      return encodeMessage('runtime.v1.CreateContainerResponse', {
        container_id: `${request.pod_sandbox_id ?? ''}-${request.config?.metadata?.name ?? ''}`,
      });
    },
  });
  runtime.on('StartContainer', { delayMs: 5 });
  return { proxy, client: proxy.client(), exporter, interceptor, podStarts };
}

function uidOf(runPodSandboxRequest: Buffer): string {
  const request = decodeMessage('runtime.v1.RunPodSandboxRequest', runPodSandboxRequest) as { config?: { metadata?: { uid?: string } } };
  return request.config?.metadata?.uid ?? '';
}

const podMetadata = (uid: string) => ({ name: `web-${uid}`, namespace: 'shop', uid, attempt: 0 });
const sandboxConfig = (uid: string) => ({
  metadata: podMetadata(uid),
  hostname: `web-${uid}`,
  log_directory: `/var/log/pods/shop_web-${uid}_${uid}`,
  labels: { app: 'web' },
  linux: { cgroup_parent: `/kubepods/burstable/pod${uid}` },
});

/** Kubelet's span of one call, as gRPC metadata. */
function kubeletSpan(spanId: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('traceparent', `00-${KUBELET_TRACE}-${spanId}-01`);
  return md;
}

async function call(client: RawClient, path: string, type: string, body: Record<string, unknown>, md?: grpc.Metadata): Promise<void> {
  const result = await client.unary(path, encodeMessage(type, body), md);
  expect(result.status.code).toBe(grpc.status.OK);
}

/** The calls kubelet makes to start a pod with two containers (one image pull, the other image present). */
async function startPod(client: RawClient, uid: string): Promise<void> {
  const sandboxId = `sandbox-${uid}`;
  await call(
    client,
    `${RUNTIME}RunPodSandbox`,
    'runtime.v1.RunPodSandboxRequest',
    { config: sandboxConfig(uid), runtime_handler: 'runc' },
    kubeletSpan('1000000000000001'),
  );
  await call(
    client,
    `${IMAGE}PullImage`,
    'runtime.v1.PullImageRequest',
    { image: { image: NGINX }, sandbox_config: sandboxConfig(uid) },
    kubeletSpan('1000000000000002'),
  );
  for (const name of ['app', 'sidecar']) {
    await call(client, `${RUNTIME}CreateContainer`, 'runtime.v1.CreateContainerRequest', {
      pod_sandbox_id: sandboxId,
      config: { metadata: { name, attempt: 0 }, image: { image: NGINX }, log_path: `${name}/0.log` },
      sandbox_config: sandboxConfig(uid),
    });
  }
  for (const name of ['app', 'sidecar']) {
    await call(client, `${RUNTIME}StartContainer`, 'runtime.v1.StartContainerRequest', { container_id: `${sandboxId}-${name}` });
  }
}

describe('tracing interceptor: pod start traces', () => {
  let setup: Setup;
  afterEach(async () => {
    setup.podStarts.feed.close();
    await setup.interceptor.close?.();
    await setup.proxy.close();
  });

  test('a pod start becomes one root span with a child per phase, within its times, with attributes that add up', async () => {
    setup = await start();
    await startPod(setup.client, 'u1');
    await waitFor(() => setup.exporter.getFinishedSpans().some((s) => s.name === 'pod start'));
    const spans = setup.exporter.getFinishedSpans();
    const pods = spans.filter((s) => s.name === 'pod start');
    expect(pods).toHaveLength(1);
    const pod = pods[0] as ReadableSpan;
    const podId = pod.spanContext().spanId;
    expect(pod.parentSpanContext).toBeUndefined();
    expect(pod.spanContext().traceId).not.toBe(KUBELET_TRACE);
    const phases = spans.filter((s) => s.parentSpanContext?.spanId === podId);
    expect(phases.map((s) => s.name)).toEqual([
      'pod start: sandbox',
      `pod start: pull ${NGINX}`,
      'pod start: create app',
      'pod start: create sidecar',
      'pod start: start app',
      'pod start: start sidecar',
    ]);
    for (const phase of phases) {
      expect(phase.spanContext().traceId).toBe(pod.spanContext().traceId);
      expect(ns(phase.startTime)).toBeGreaterThanOrEqual(ns(pod.startTime));
      expect(ns(phase.endTime)).toBeLessThanOrEqual(ns(pod.endTime));
    }
    expect(ns((phases[5] as ReadableSpan).endTime)).toBe(ns(pod.endTime));
    expect(pod.attributes).toMatchObject({
      'cri.pod.name': 'web-u1',
      'cri.pod.namespace': 'shop',
      'cri.pod.uid': 'u1',
      'cri.sandbox.id': 'sandbox-u1',
      'cri.runtime_handler': 'runc',
      'cri.pod_start.status': 'ok',
      'cri.pod_start.containers': 2,
    });
    const total = pod.attributes['cri.pod_start.total_ms'] as number;
    expect(total).toBeCloseTo(durationMs(pod), 2);
    let sum = 0;
    for (const kind of ['sandbox', 'pull', 'create', 'start']) {
      const ofKind = phases.filter((s) => s.attributes['cri.pod_start.phase'] === kind);
      const kindSum = ofKind.reduce((acc, s) => acc + (s.attributes['cri.pod_start.phase_ms'] as number), 0);
      expect(pod.attributes[`cri.pod_start.${kind}_ms`]).toBeCloseTo(kindSum, 6);
      for (const s of ofKind) expect(s.attributes['cri.pod_start.phase_ms']).toBeCloseTo(durationMs(s), 2);
      sum += kindSum;
    }
    // Phases run one after another, so they cannot add up to more than the whole.
    expect(sum).toBeLessThanOrEqual(total + 0.01);
    expect(pod.attributes['cri.pod_start.pull_ms']).toBeGreaterThanOrEqual(30);
    expect(phases[1]?.attributes['cri.image']).toBe(NGINX);
    expect(phases[4]?.attributes['cri.container.name']).toBe('app');
  });

  test("phases link to kubelet's span of the call and to the proxy's own call span", async () => {
    setup = await start();
    await startPod(setup.client, 'u1');
    await waitFor(() => setup.exporter.getFinishedSpans().some((s) => s.name === 'pod start'));
    const spans = setup.exporter.getFinishedSpans();
    const callSpan = spans.find((s) => s.name === 'runtime.v1.RuntimeService/RunPodSandbox') as ReadableSpan;
    expect(callSpan.parentSpanContext?.spanId).toBe('1000000000000001');
    const sandbox = spans.find((s) => s.name === 'pod start: sandbox') as ReadableSpan;
    expect(sandbox.links.map((l) => [l.context.traceId, l.context.spanId])).toEqual([
      [KUBELET_TRACE, '1000000000000001'],
      [KUBELET_TRACE, callSpan.spanContext().spanId],
    ]);
    const pull = spans.find((s) => s.name.startsWith('pod start: pull')) as ReadableSpan;
    expect(pull.links[0]?.context.spanId).toBe('1000000000000002');
    const create = spans.find((s) => s.name === 'pod start: create app') as ReadableSpan;
    const createCall = spans.find((s) => s.name === 'runtime.v1.RuntimeService/CreateContainer') as ReadableSpan;
    // No traceparent from the client: only the proxy's own span is linked.
    expect(create.links.map((l) => l.context.spanId)).toEqual([createCall.spanContext().spanId]);
    const pod = spans.find((s) => s.name === 'pod start') as ReadableSpan;
    expect(pod.links.map((l) => l.context.spanId)).toEqual(['1000000000000001', callSpan.spanContext().spanId]);
  });

  test('a failed RunPodSandbox gives a failed pod start at once', async () => {
    setup = await start();
    setup.proxy.runtime.on('RunPodSandbox', { fail: { code: grpc.status.UNKNOWN, message: 'failed to create network' } });
    const result = await setup.client.unary(
      `${RUNTIME}RunPodSandbox`,
      encodeMessage('runtime.v1.RunPodSandboxRequest', { config: sandboxConfig('u2') }),
    );
    expect(result.status.code).toBe(grpc.status.UNKNOWN);
    const spans = setup.exporter.getFinishedSpans();
    const pod = spans.find((s) => s.name === 'pod start') as ReadableSpan;
    expect(pod.attributes['cri.pod_start.status']).toBe('failed');
    expect(pod.status.code).toBe(2);
    expect(spans.filter((s) => s.parentSpanContext?.spanId === pod.spanContext().spanId).map((s) => s.name)).toEqual([
      'pod start: sandbox',
    ]);
  });

  test('state is bounded: beyond maxStarting the oldest unfinished pod start is dropped', async () => {
    setup = await start({ maxStarting: 1 });
    const sandbox = (uid: string) => ({ config: sandboxConfig(uid), runtime_handler: 'runc' });
    await call(setup.client, `${RUNTIME}RunPodSandbox`, 'runtime.v1.RunPodSandboxRequest', sandbox('a'));
    await call(setup.client, `${RUNTIME}RunPodSandbox`, 'runtime.v1.RunPodSandboxRequest', sandbox('b'));
    for (const uid of ['a', 'b']) {
      await call(setup.client, `${RUNTIME}CreateContainer`, 'runtime.v1.CreateContainerRequest', {
        pod_sandbox_id: `sandbox-${uid}`,
        config: { metadata: { name: 'app' } },
        sandbox_config: sandboxConfig(uid),
      });
      await call(setup.client, `${RUNTIME}StartContainer`, 'runtime.v1.StartContainerRequest', { container_id: `sandbox-${uid}-app` });
    }
    await waitFor(() => setup.exporter.getFinishedSpans().some((s) => s.name === 'pod start'));
    // Closing reports every pod start still waiting for its quiet period: nothing later can add one.
    setup.podStarts.feed.close();
    const pods = setup.exporter.getFinishedSpans().filter((s) => s.name === 'pod start');
    expect(pods.map((s) => s.attributes['cri.pod.uid'])).toEqual(['b']);
  });

  test('podStart.enabled: false records call spans only', async () => {
    setup = await start({ enabled: false });
    await startPod(setup.client, 'u1');
    setup.podStarts.feed.close();
    await setup.interceptor.close?.();
    const names = setup.exporter.getFinishedSpans().map((s) => s.name);
    expect(names).toHaveLength(6);
    expect(names.filter((n) => n.startsWith('pod start'))).toEqual([]);
  });
});
