import * as net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { SpanKind, SpanStatusCode, type Tracer, type TracerProvider } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { Registry } from 'prom-client';
import { createTracingInterceptor } from '../../src/interceptors/tracing';
import { silentLogger } from '../../src/log';
import { encodeMessage } from '../../src/messages/codec';
import type { ChainEntry } from '../../src/chain/chain';
import { Router } from '../../src/proxy/router';
import type { Interceptor } from '../../src/chain/types';
import { Upstream } from '../../src/proxy/upstream';
import { startTestProxy, type RawClient, type TestProxy } from '../support/proxy-harness';
import { sample } from '../support/metric-samples';
import { eventually, waitFor } from '../support/wait';
import { tracingConfigSchema } from '../../src/interceptors/tracing/config';

const RUNTIME = '/runtime.v1.RuntimeService/';
const KUBELET_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const KUBELET_SPAN = '00f067aa0ba902b7';

/** Tracing never uses the router; the deps just need one. */
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

interface Setup {
  readonly proxy: TestProxy;
  readonly client: RawClient;
  readonly exporter: InMemorySpanExporter;
  readonly interceptor: Interceptor;
  /** Methods whose request was decoded, in call order. */
  readonly decoded: string[];
}

async function start(config: unknown = {}, tracerProvider?: TracerProvider): Promise<Setup> {
  const exporter = new InMemorySpanExporter();
  const provider = tracerProvider ?? new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const interceptor = createTracingInterceptor(tracingConfigSchema.parse(config), {
    name: 'tracing',
    log: silentLogger,
    registry: new Registry(),
    router: unusedRouter(),
    tracerProvider: provider,
  });
  const decoded: string[] = [];
  // Records every request decode, to show polling calls are never decoded.
  const spy: ChainEntry = {
    interceptor: {
      name: 'decode-spy',
      intercept: (ctx, next) => {
        const request = ctx.request.bind(ctx);
        ctx.request = () => {
          decoded.push(ctx.method.name);
          return request();
        };
        return next();
      },
    },
    onError: 'failClosed',
    methods: undefined,
  };
  const proxy = await startTestProxy({ entries: [spy, { interceptor, onError: 'failClosed', methods: undefined }] });
  return { proxy, client: proxy.client(), exporter, interceptor, decoded };
}

function only(spans: ReadableSpan[], name: string): ReadableSpan {
  const found = spans.filter((s) => s.name === name);
  expect(found).toHaveLength(1);
  return found[0] as ReadableSpan;
}

describe('tracing interceptor: call spans', () => {
  let setup: Setup;
  afterEach(async () => {
    await setup.interceptor.close?.();
    await setup.proxy.close();
  });

  test('an OK call gets a SERVER span with the RPC attributes and an unset status; polling calls are not decoded', async () => {
    setup = await start({ pollingSamplingRatio: 1 });
    const result = await setup.client.unary(`${RUNTIME}Version`, encodeMessage('runtime.v1.VersionRequest', { version: 'v1' }));
    expect(result.status.code).toBe(grpc.status.OK);
    const span = only(setup.exporter.getFinishedSpans(), 'runtime.v1.RuntimeService/Version');
    expect(span.kind).toBe(SpanKind.SERVER);
    expect(span.attributes).toEqual({
      'rpc.system': 'grpc',
      'rpc.service': 'runtime.v1.RuntimeService',
      'rpc.method': 'Version',
      'rpc.grpc.status_code': 0,
      'cri.backend': 'fake',
    });
    expect(span.status.code).toBe(SpanStatusCode.UNSET);
    expect(span.parentSpanContext).toBeUndefined();
    await setup.client.unary(`${RUNTIME}ContainerStatus`, encodeMessage('runtime.v1.ContainerStatusRequest', { container_id: 'c1' }));
    expect(setup.decoded).toEqual([]);
  });

  test('an error call gets status ERROR with the runtime message and its gRPC code', async () => {
    setup = await start();
    setup.proxy.runtime.on('StopContainer', { fail: { code: grpc.status.NOT_FOUND, message: 'container "c9" not found' } });
    const request = encodeMessage('runtime.v1.StopContainerRequest', { container_id: 'c9', timeout: 10 });
    const result = await setup.client.unary(`${RUNTIME}StopContainer`, request);
    expect(result.status.code).toBe(grpc.status.NOT_FOUND);
    const span = only(setup.exporter.getFinishedSpans(), 'runtime.v1.RuntimeService/StopContainer');
    expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: 'container "c9" not found' });
    expect(span.attributes['rpc.grpc.status_code']).toBe(grpc.status.NOT_FOUND);
    expect(span.attributes['cri.container.id']).toBe('c9');
  });

  test('a proxy-side failure (runtime down) is an ERROR span marked as from the proxy', async () => {
    setup = await start();
    await setup.proxy.runtime.stop();
    const result = await setup.client.unary(`${RUNTIME}Version`, Buffer.alloc(0));
    expect(result.status.code).toBe(grpc.status.UNAVAILABLE);
    const span = only(setup.exporter.getFinishedSpans(), 'runtime.v1.RuntimeService/Version');
    expect(span.status.code).toBe(SpanStatusCode.ERROR);
    expect(span.attributes['rpc.grpc.status_code']).toBe(grpc.status.UNAVAILABLE);
    expect(span.attributes['cri.from_proxy']).toBe(true);
  });

  test('a mutating call carries the CRI identity of its request and response', async () => {
    setup = await start();
    setup.proxy.runtime.on('CreateContainer', { respond: encodeMessage('runtime.v1.CreateContainerResponse', { container_id: 'ctr-1' }) });
    const request = encodeMessage('runtime.v1.CreateContainerRequest', {
      pod_sandbox_id: 'sb-1',
      config: { metadata: { name: 'app', attempt: 0 }, image: { image: 'docker.io/library/nginx:1.27' } },
      sandbox_config: { metadata: { name: 'web-0', namespace: 'shop', uid: 'uid-1', attempt: 0 } },
    });
    const result = await setup.client.unary(`${RUNTIME}CreateContainer`, request);
    expect(result.status.code).toBe(grpc.status.OK);
    expect(setup.proxy.runtime.lastCall('CreateContainer')?.requestBytes.equals(request)).toBe(true);
    const span = only(setup.exporter.getFinishedSpans(), 'runtime.v1.RuntimeService/CreateContainer');
    expect(span.attributes).toMatchObject({
      'cri.sandbox.id': 'sb-1',
      'cri.pod.name': 'web-0',
      'cri.pod.namespace': 'shop',
      'cri.pod.uid': 'uid-1',
      'cri.container.name': 'app',
      'cri.image': 'docker.io/library/nginx:1.27',
      'cri.container.id': 'ctr-1',
    });
  });

  test('continues the client traceparent and passes its own span on to the runtime', async () => {
    setup = await start();
    const md = new grpc.Metadata();
    md.set('traceparent', `00-${KUBELET_TRACE}-${KUBELET_SPAN}-01`);
    md.set('tracestate', 'kubelet=1');
    const result = await setup.client.unary(`${RUNTIME}Status`, Buffer.alloc(0), md);
    expect(result.status.code).toBe(grpc.status.OK);
    const span = only(setup.exporter.getFinishedSpans(), 'runtime.v1.RuntimeService/Status');
    expect(span.parentSpanContext?.spanId).toBe(KUBELET_SPAN);
    expect(span.spanContext().traceId).toBe(KUBELET_TRACE);
    const seen = setup.proxy.runtime.lastCall('Status')?.metadata;
    expect(seen?.traceparent).toBe(`00-${KUBELET_TRACE}-${span.spanContext().spanId}-01`);
    expect(seen?.tracestate).toBe('kubelet=1');
  });

  test('without a client trace context the span starts a trace and the runtime still gets a traceparent', async () => {
    setup = await start({ pollingSamplingRatio: 1 });
    await setup.client.unary(`${RUNTIME}Version`, Buffer.alloc(0));
    const span = only(setup.exporter.getFinishedSpans(), 'runtime.v1.RuntimeService/Version');
    const { traceId, spanId } = span.spanContext();
    expect(setup.proxy.runtime.lastCall('Version')?.metadata.traceparent).toBe(`00-${traceId}-${spanId}-01`);
  });

  test('by default a polling call gets no span and the runtime gets no trace context from the proxy; a call that changes state does', async () => {
    setup = await start();
    await setup.client.unary(`${RUNTIME}Version`, Buffer.alloc(0));
    await setup.client.unary(`${RUNTIME}ListContainers`, Buffer.alloc(0));
    expect(setup.exporter.getFinishedSpans()).toEqual([]);
    expect(setup.proxy.runtime.lastCall('Version')?.metadata.traceparent).toBeUndefined();
    await setup.client.unary(`${RUNTIME}StartContainer`, encodeMessage('runtime.v1.StartContainerRequest', { container_id: 'c1' }));
    only(setup.exporter.getFinishedSpans(), 'runtime.v1.RuntimeService/StartContainer');
    expect(setup.proxy.runtime.lastCall('StartContainer')?.metadata.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  });

  test('a polling call left out that is slow gets its span once it ends, from its arrival to its end', async () => {
    setup = await start({ slowCallMs: 0 });
    const before = Date.now();
    await setup.client.unary(`${RUNTIME}ListContainers`, Buffer.alloc(0));
    const span = only(setup.exporter.getFinishedSpans(), 'runtime.v1.RuntimeService/ListContainers');
    expect(span.attributes).toMatchObject({ 'rpc.method': 'ListContainers', 'rpc.grpc.status_code': 0, 'cri.backend': 'fake' });
    const startMs = span.startTime[0] * 1000 + span.startTime[1] / 1e6;
    const endMs = span.endTime[0] * 1000 + span.endTime[1] / 1e6;
    expect(startMs).toBeGreaterThanOrEqual(before - 1);
    expect(endMs).toBeGreaterThanOrEqual(startMs);
    // Its span came after the call was forwarded: the runtime got no trace context of it.
    expect(setup.proxy.runtime.lastCall('ListContainers')?.metadata.traceparent).toBeUndefined();
  });

  test("a polling call the caller's context leaves unsampled gets no span; its context reaches the runtime as sent", async () => {
    setup = await start();
    const md = new grpc.Metadata();
    md.set('traceparent', `00-${KUBELET_TRACE}-${KUBELET_SPAN}-00`);
    await setup.client.unary(`${RUNTIME}Status`, Buffer.alloc(0), md);
    expect(setup.exporter.getFinishedSpans()).toEqual([]);
    expect(setup.proxy.runtime.lastCall('Status')?.metadata.traceparent).toBe(`00-${KUBELET_TRACE}-${KUBELET_SPAN}-00`);
  });

  test('a tracer that throws never fails or alters a call', async () => {
    const broken: Tracer = {
      startSpan: () => {
        throw new Error('tracer bug');
      },
      startActiveSpan: () => {
        throw new Error('tracer bug');
      },
    };
    setup = await start({}, { getTracer: () => broken });
    const result = await setup.client.unary(`${RUNTIME}Version`, Buffer.alloc(0));
    expect(result.status.code).toBe(grpc.status.OK);
    expect(setup.proxy.faults).toEqual([]);
  });

  test('close() leaves an injected provider working', async () => {
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    setup = await start({}, provider);
    await setup.client.unary(`${RUNTIME}Version`, Buffer.alloc(0));
    await setup.interceptor.close?.();
    provider.getTracer('other').startSpan('after close').end();
    expect(exporter.getFinishedSpans().map((s) => s.name)).toContain('after close');
  });
});

/** A collector that accepts connections and never answers: an export to it hangs until its sockets are cut. */
async function blackHole(): Promise<{
  port: number;
  sockets: net.Socket[];
  bytes: () => number;
  cut: () => void;
  close: () => Promise<void>;
}> {
  const sockets: net.Socket[] = [];
  let bytes = 0;
  const server = net.createServer((socket) => {
    sockets.push(socket);
    socket.on('data', (chunk) => (bytes += chunk.length));
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    sockets,
    bytes: () => bytes,
    cut: () => {
      for (const socket of sockets) socket.destroy();
    },
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('tracing interceptor: OTLP/gRPC export', () => {
  test('spans reach the collector with the configured headers as metadata and the service name', async () => {
    const received: { apiKey: unknown; body: string }[] = [];
    const collector = new grpc.Server();
    const identity = (b: Buffer): Buffer => b;
    collector.register(
      '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
      (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        received.push({ apiKey: call.metadata.get('x-api-key')[0], body: call.request.toString('latin1') });
        callback(null, Buffer.alloc(0));
      },
      identity,
      identity,
      'unary',
    );
    const port = await new Promise<number>((resolve, reject) => {
      collector.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
    });
    const config = tracingConfigSchema.parse({
      serviceName: 'svc-grpc-test',
      pollingSamplingRatio: 1,
      exporter: { type: 'otlp-grpc', endpoint: `http://127.0.0.1:${port}`, headers: { 'x-api-key': 'k-456' }, timeoutMs: 2000 },
    });
    const interceptor = createTracingInterceptor(config, {
      name: 'tracing',
      log: silentLogger,
      registry: new Registry(),
      router: unusedRouter(),
    });
    const proxy = await startTestProxy({ entries: [{ interceptor, onError: 'failClosed', methods: undefined }] });
    try {
      const result = await proxy.client().unary(`${RUNTIME}Version`, Buffer.alloc(0));
      expect(result.status.code).toBe(grpc.status.OK);
      await interceptor.close?.(); // flushes
      expect(received.length).toBeGreaterThanOrEqual(1);
      expect(received.every((r) => r.apiKey === 'k-456')).toBe(true);
      expect(received.some((r) => r.body.includes('svc-grpc-test') && r.body.includes('runtime.v1.RuntimeService/Version'))).toBe(true);
    } finally {
      await proxy.close();
      collector.forceShutdown();
    }
  }, 20_000);
});

// The OTLP/HTTP exporter loads node:http through a native dynamic import, which jest's module sandbox cannot
// run; tracing-exporter.test.ts covers it in a plain Node child process. gRPC works here.
describe('tracing interceptor: a collector that never answers', () => {
  test('calls go on while an export hangs; the failed export is counted; close() returns', async () => {
    const collector = await blackHole();
    const registry = new Registry();
    // An export timeout far beyond the test: calls that waited on the exporter would never finish in time.
    const config = tracingConfigSchema.parse({
      exporter: { type: 'otlp-grpc', endpoint: `http://127.0.0.1:${collector.port}`, timeoutMs: 600_000 },
      pollingSamplingRatio: 1,
    });
    const interceptor = createTracingInterceptor(config, { name: 'tracing', log: silentLogger, registry, router: unusedRouter() });
    const proxy = await startTestProxy({ entries: [{ interceptor, onError: 'failClosed', methods: undefined }] });
    const client = proxy.client();
    const failures = (): Promise<number | undefined> =>
      sample(registry, 'cri_proxy_trace_export_failures_total', { interceptor: 'tracing', exporter: 'otlp-grpc' });
    try {
      expect((await client.unary(`${RUNTIME}Version`, Buffer.alloc(0))).status.code).toBe(grpc.status.OK);
      // The batch processor's scheduled export reaches the collector, which holds it.
      await waitFor(() => collector.bytes() > 0, 15_000);
      const codes = await Promise.all(Array.from({ length: 50 }, () => client.unary(`${RUNTIME}Version`, Buffer.alloc(0))));
      expect(new Set(codes.map((c) => c.status.code))).toEqual(new Set([grpc.status.OK]));
      expect(await failures()).toBe(0);
      collector.cut();
      await eventually(async () => ((await failures()) ?? 0) >= 1, 15_000);
      expect(
        await sample(registry, 'cri_proxy_trace_spans_dropped_total', { interceptor: 'tracing', exporter: 'otlp-grpc' }),
      ).toBeGreaterThanOrEqual(1);
      expect(proxy.faults).toEqual([]);
    } finally {
      await collector.close();
      await interceptor.close?.();
      await proxy.close();
    }
  }, 40_000);
});
