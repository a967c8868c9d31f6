/** Routing among the other interceptors: the image policy asks the backend routing picked; observers name it. */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { Registry } from 'prom-client';
import type { InterceptorDeps } from '../../src/chain/interceptor-types';
import { auditConfigSchema, createAuditInterceptor } from '../../src/interceptors/audit';
import { createImagePolicyInterceptor, imagePolicySchema } from '../../src/interceptors/image-policy';
import { createMetricsInterceptor, metricsConfigSchema } from '../../src/interceptors/metrics';
import { createTracingInterceptor } from '../../src/interceptors/tracing';
import { silentLogger } from '../../src/log';
import type { ChainEntry } from '../../src/chain/chain';
import type { Router } from '../../src/proxy/router';
import type { Interceptor } from '../../src/chain/types';
import { sample } from '../support/metric-samples';
import { makeTempDir, RawClient } from '../support/proxy-harness';
import { callVia, ok, sandboxConfig, startRoutingProxy, type Reply, type RoutingProxy } from '../support/routing-proxy';
import { waitFor } from '../support/wait';
import { tracingConfigSchema } from '../../src/interceptors/tracing/config';

jest.setTimeout(30_000);

let routing: RoutingProxy;
afterEach(async () => {
  await routing.close();
});

const entry = (interceptor: Interceptor, onError: ChainEntry['onError'] = 'failClosed'): ChainEntry => ({
  interceptor,
  onError,
  methods: undefined,
});
const depsOf = (name: string, router: Router, registry = new Registry()): InterceptorDeps => ({
  name,
  log: silentLogger,
  registry,
  router,
});

/** Pulls `image` straight on the runtime's own socket (around the proxy and its policy); returns its ID. */
async function pullDirectly(routingProxy: RoutingProxy, image: string): Promise<string> {
  const direct = new RawClient(routingProxy.runtime.crio.target);
  try {
    return ok(await callVia(direct, 'PullImage', { image: { image } }))['image_ref'] as string;
  } finally {
    direct.close();
  }
}

describe('the image policy behind routing', () => {
  const policy = { defaultAction: 'deny', rules: [{ name: 'ours', match: { images: ['registry.example/allowed/**'] }, action: 'allow' }] };

  test('CreateContainer and PullImage are judged with the images of the backend that owns the pod', async () => {
    routing = await startRoutingProxy({
      after: (router) => [entry(createImagePolicyInterceptor(imagePolicySchema.parse(policy), depsOf('images', router)))],
    });
    const config = sandboxConfig('p', 'sandboxed');
    const podId = ok(await routing.call('RunPodSandbox', { config }))['pod_sandbox_id'] as string;
    expect(routing.cri.crio.sandboxes.has(podId)).toBe(true);

    // Pulled for the pod: allowed, and on crio, where the pod runs.
    const allowed = ok(await routing.call('PullImage', { image: { image: 'registry.example/allowed/app:1' }, sandbox_config: config }))[
      'image_ref'
    ] as string;
    expect([...routing.cri.crio.images.keys()]).toEqual([allowed]);
    // Created by image ID, as kubelet does: only crio knows the ID's names, and the policy asks crio.
    const create = (image: string): Promise<Reply> =>
      routing.call('CreateContainer', {
        pod_sandbox_id: podId,
        sandbox_config: config,
        config: { metadata: { name: 'c' }, image: { image } },
      });
    expect(ok(await create(allowed))['container_id']).toMatch(/^crio-ctr-/);
    expect(routing.runtime.containerd.lastCall('ImageStatus')).toBeUndefined();
    expect(routing.runtime.crio.lastCall('ImageStatus')).toBeDefined();

    // An image someone pulled on crio's own socket is judged by its name there: denied.
    const other = await pullDirectly(routing, 'registry.example/other/tool:2');
    const denied = await create(other);
    expect([denied.code, denied.details]).toEqual([
      grpc.status.PERMISSION_DENIED,
      expect.stringContaining('registry.example/other/tool:2'),
    ]);
    expect(routing.runtime.crio.calls.filter((c) => c.name === 'CreateContainer')).toHaveLength(1);
    const refused = await routing.call('PullImage', { image: { image: 'docker.io/library/evil:1' }, sandbox_config: config });
    expect(refused.code).toBe(grpc.status.PERMISSION_DENIED);
    expect([routing.cri.containerd.images.size, routing.cri.crio.images.size]).toEqual([0, 2]);
  });
});

describe('observers in front of routing', () => {
  test('metrics, traces and audit records name the backend a call went to, and "*" for answers from every backend', async () => {
    const exporter = new InMemorySpanExporter();
    const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    const metrics = new Registry();
    const dir = makeTempDir();
    const auditPath = join(dir, 'audit.log');
    routing = await startRoutingProxy({
      before: (router) => [
        entry(
          createTracingInterceptor(tracingConfigSchema.parse({ pollingSamplingRatio: 1 }), {
            ...depsOf('tracing', router),
            tracerProvider,
          }),
          'failOpen',
        ),
        entry(createMetricsInterceptor(metricsConfigSchema.parse({}), depsOf('metrics', router, metrics)), 'failOpen'),
        entry(createAuditInterceptor(auditConfigSchema.parse({ path: auditPath, includeReads: true }), depsOf('audit', router))),
      ],
    });
    const config = sandboxConfig('p', 'sandboxed');
    ok(await routing.call('RunPodSandbox', { config }));
    ok(await routing.call('ListContainers'));
    ok(await routing.call('PullImage', { image: { image: 'registry.example/app:1' }, sandbox_config: config }));
    // As kubelet does after a pull: no handler, so routing finds the image (on crio) and relays crio's answer.
    ok(await routing.call('ImageStatus', { image: { image: 'registry.example/app:1' } }));
    ok(await routing.call('Version'));

    const expected = { RunPodSandbox: 'crio', ListContainers: '*', PullImage: 'crio', ImageStatus: 'crio', Version: 'containerd' };
    for (const [method, backend] of Object.entries(expected)) {
      expect([method, await sample(metrics, 'cri_proxy_calls_total', { method, code: 'OK', backend })]).toEqual([method, 1]);
    }
    // The pulled image's size is read from the answer routing relayed.
    expect(await sample(metrics, 'cri_proxy_image_pull_bytes', {}, '_count')).toBe(1);
    await waitFor(() => exporter.getFinishedSpans().length === 5);
    const spans = Object.fromEntries(
      exporter.getFinishedSpans().map((s) => [s.name.slice(s.name.indexOf('/') + 1), s.attributes['cri.backend']]),
    );
    expect(spans).toEqual(expected);
    // Routing's own calls carry the trace context the tracing interceptor set for the call.
    const listSpan = exporter.getFinishedSpans().find((s) => s.name.endsWith('/ListContainers'));
    for (const runtime of [routing.runtime.containerd, routing.runtime.crio]) {
      expect(runtime.lastCall('ListContainers')?.metadata['traceparent']).toContain(listSpan?.spanContext().traceId ?? 'no span');
    }
    const records = readFileSync(auditPath, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { method: string; backend: string });
    expect(Object.fromEntries(records.map((r) => [r.method.slice(r.method.lastIndexOf('/') + 1), r.backend]))).toEqual(expected);
    rmSync(dir, { recursive: true, force: true });
  });
});
