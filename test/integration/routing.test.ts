/** Routing in the running proxy, in front of two fake CRI runtimes: placement, ownership and merged answers. */
import * as grpc from '@grpc/grpc-js';
import { methodRoutes } from '../../src/interceptors/routing/method-routes';
import { decodeMessage } from '../../src/messages/codec';
import { sample } from '../support/metric-samples';
import { RawClient } from '../support/proxy-harness';
import {
  callVia,
  methodOf,
  methodsCalled,
  ok,
  sandboxConfig,
  startRoutingProxy,
  type Backend,
  type RoutingProxy,
} from '../support/routing-proxy';

jest.setTimeout(30_000);

let routing: RoutingProxy;
afterEach(async () => {
  await routing.close();
});

const other = (backend: Backend): Backend => (backend === 'containerd' ? 'crio' : 'containerd');

async function runPod(
  name: string,
  namespace: string,
  extra: Record<string, unknown> = {},
): Promise<{ podId: string; containerId: string }> {
  const config = sandboxConfig(name, namespace, extra['config'] as Record<string, unknown> | undefined);
  const podId = ok(await routing.call('RunPodSandbox', { config, runtime_handler: extra['handler'] ?? '' }))['pod_sandbox_id'] as string;
  const created = ok(
    await routing.call('CreateContainer', {
      pod_sandbox_id: podId,
      sandbox_config: config,
      config: { metadata: { name: 'main' }, image: { image: 'busybox' } },
    }),
  );
  return { podId, containerId: created['container_id'] as string };
}

describe('new pods', () => {
  test.each<[string, Backend, Record<string, unknown>, string, string]>([
    ['no rule matches', 'containerd', { handler: '' }, '', 'default'],
    ['a handler no rule names passes unchanged', 'containerd', { handler: 'runc' }, 'runc', 'default'],
    ['a kata handler, renamed for crio', 'crio', { handler: 'kata-fast' }, 'kata', 'kata'],
    ['another kata handler, kept as it is', 'crio', { handler: 'kata-qemu' }, 'kata-qemu', 'kata'],
    ['a sandboxed namespace', 'crio', { namespace: 'untrusted-7' }, '', 'sandboxed'],
    ['an opt-in annotation', 'crio', { config: { annotations: { 'cri-proxy.io/backend': 'crio' } } }, '', 'opt-in'],
    ['a label glob', 'crio', { config: { labels: { accel: 'gpu-a100' } } }, '', 'gpu'],
  ])('%s: RunPodSandbox lands on %s, the ID is the runtime’s own', async (_name, backend, pod, handler, rule) => {
    routing = await startRoutingProxy();
    const config = sandboxConfig(
      'p',
      (pod['namespace'] as string | undefined) ?? 'web',
      pod['config'] as Record<string, unknown> | undefined,
    );
    const reply = ok(await routing.call('RunPodSandbox', { config, runtime_handler: pod['handler'] ?? '' }));
    const id = reply['pod_sandbox_id'] as string;
    expect(routing.cri[backend].sandboxes.get(id)?.handler).toBe(handler);
    expect(routing.cri[other(backend)].sandboxes.size).toBe(0);
    expect(methodsCalled(routing.runtime[other(backend)])).not.toContain('RunPodSandbox');
    expect(await sample(routing.registry(), 'cri_proxy_routing_placements_total', { backend, rule })).toBe(1);
  });

  test('RestorePod is placed by the same rules, its handler renamed', async () => {
    routing = await startRoutingProxy();
    ok(await routing.call('RestorePod', { config: sandboxConfig('r', 'web'), runtime_handler: 'kata-fast' }));
    const restored = routing.runtime.crio.lastCall('RestorePod');
    expect(decodeMessage('runtime.v1.RestorePodRequest', restored?.requestBytes ?? Buffer.alloc(0))['runtime_handler']).toBe('kata');
    expect(routing.runtime.containerd.lastCall('RestorePod')).toBeUndefined();
  });
});

describe('calls naming a sandbox or a container', () => {
  const idMethods = Object.entries(methodRoutes).flatMap(([name, entry]) =>
    (entry.route.kind === 'sandbox' || entry.route.kind === 'container') && !name.startsWith('Remove') && name !== 'CreateContainer'
      ? [[name, entry.route.kind, entry.route.field] as const]
      : [],
  );

  test('every ID-bearing method reaches the runtime that owns the ID, and only that one', async () => {
    routing = await startRoutingProxy();
    const pods = { containerd: await runPod('a', 'web'), crio: await runPod('b', 'sandboxed') };
    expect(idMethods.length).toBeGreaterThan(15);
    for (const backend of ['containerd', 'crio'] as const) {
      for (const [method, kind, field] of idMethods) {
        const id = kind === 'sandbox' ? pods[backend].podId : pods[backend].containerId;
        const seen = { containerd: routing.runtime.containerd.calls.length, crio: routing.runtime.crio.calls.length };
        const reply = await routing.call(method, { [field]: id });
        expect([method, reply.code, reply.code === grpc.status.OK ? '' : reply.details]).toEqual([method, grpc.status.OK, '']);
        expect([method, methodsCalled(routing.runtime[backend], seen[backend])]).toEqual([method, [method]]);
        expect([method, methodsCalled(routing.runtime[other(backend)], seen[other(backend)])]).toEqual([method, []]);
      }
      const exec = ok(await routing.call('ExecSync', { container_id: pods[backend].containerId, cmd: ['id'] }));
      expect((exec['stdout'] as Buffer).toString()).toBe(`${backend}:${pods[backend].containerId}`);
    }
    // Every owner came from the answers that created the objects: nobody had to be asked.
    expect(await sample(routing.registry(), 'cri_proxy_routing_ownership_resolutions_total')).toBeUndefined();
  });

  test('removal is routed and forgotten; an ID no runtime knows gets the default runtime’s answer', async () => {
    routing = await startRoutingProxy();
    const pod = await runPod('b', 'sandboxed');
    ok(await routing.call('RemoveContainer', { container_id: pod.containerId }));
    ok(await routing.call('RemovePodSandbox', { pod_sandbox_id: pod.podId }));
    expect(routing.runtime.containerd.lastCall('RemovePodSandbox')).toBeUndefined();
    expect(routing.cri.crio.sandboxes.size).toBe(0);
    const gone = await routing.call('PodSandboxStatus', { pod_sandbox_id: pod.podId });
    expect([gone.code, gone.details]).toEqual([grpc.status.NOT_FOUND, `containerd: pod sandbox "${pod.podId}" not found`]);
    expect(await sample(routing.registry(), 'cri_proxy_routing_ownership_resolutions_total', { kind: 'sandbox', result: 'unknown' })).toBe(
      1,
    );
  });

  test('an object made on a runtime’s own socket is found by asking the runtimes, then cached', async () => {
    routing = await startRoutingProxy();
    const direct = new RawClient(routing.runtime.crio.target);
    try {
      const podId = ok(await callVia(direct, 'RunPodSandbox', { config: sandboxConfig('d', 'web') }))['pod_sandbox_id'] as string;
      for (let i = 0; i < 3; i++)
        expect(ok(await routing.call('PodSandboxStatus', { pod_sandbox_id: podId }))['status']).toMatchObject({ id: podId });
      expect(await sample(routing.registry(), 'cri_proxy_routing_ownership_resolutions_total', { kind: 'sandbox', result: 'found' })).toBe(
        1,
      );
      // Asked once: containerd was asked too (and said NOT_FOUND), later calls went straight to crio.
      expect(methodsCalled(routing.runtime.containerd).filter((m) => m === 'PodSandboxStatus')).toHaveLength(1);
      expect(methodsCalled(routing.runtime.crio).filter((m) => m === 'PodSandboxStatus')).toHaveLength(4);
    } finally {
      direct.close();
    }
  });
});

describe('node-wide calls', () => {
  test('lists are merged from both runtimes, with the client’s filter and metadata sent to each', async () => {
    routing = await startRoutingProxy();
    const a = await runPod('a', 'web');
    const b = await runPod('b', 'sandboxed');
    const md = { 'x-request-id': 'r-1' };
    const ids = (items: unknown, key = 'id'): string[] => (items as Record<string, unknown>[]).map((i) => i[key] as string);
    expect(ids(ok(await routing.call('ListPodSandbox', {}, md))['items'])).toEqual([a.podId, b.podId]);
    expect(ids(ok(await routing.call('ListContainers'))['containers'])).toEqual([a.containerId, b.containerId]);
    const filtered = ok(await routing.call('ListContainers', { filter: { pod_sandbox_id: b.podId } }))['containers'];
    expect(ids(filtered)).toEqual([b.containerId]);
    const stats = ok(await routing.call('ListContainerStats'))['stats'] as { attributes: { id: string } }[];
    expect(stats.map((s) => s.attributes.id)).toEqual([a.containerId, b.containerId]);
    const podStats = ok(await routing.call('ListPodSandboxStats'))['stats'] as { attributes: { id: string } }[];
    expect(podStats.map((s) => s.attributes.id)).toEqual([a.podId, b.podId]);
    expect(ids(ok(await routing.call('ListPodSandboxMetrics'))['pod_metrics'], 'pod_sandbox_id')).toEqual([a.podId, b.podId]);
    expect(ids(ok(await routing.call('ListMetricDescriptors'))['descriptors'], 'name')).toEqual([
      'container_cpu_usage_seconds_total',
      'containerd_only',
      'crio_only',
    ]);
    const fs = ok(await routing.call('ImageFsInfo'))['image_filesystems'] as { fs_id: { mountpoint: string } }[];
    expect(fs.map((f) => f.fs_id.mountpoint)).toEqual(['/var/lib/containerd', '/var/lib/crio']);
    for (const backend of ['containerd', 'crio'] as const) {
      const list = routing.runtime[backend].lastCall('ListPodSandbox');
      expect(list?.metadata['x-request-id']).toBe('r-1');
      const call = routing.runtime[backend].lastCall('ListContainers');
      expect(decodeMessage('runtime.v1.ListContainersRequest', call?.requestBytes ?? Buffer.alloc(0))).toEqual({
        filter: { pod_sandbox_id: b.podId },
      });
    }
  });

  test('Stream* calls merge both runtimes’ streams', async () => {
    routing = await startRoutingProxy();
    const a = await runPod('a', 'web');
    const b = await runPod('b', 'sandboxed');
    const stream = routing.client.serverStream(methodOf('StreamContainers').path, Buffer.alloc(0));
    const ids: string[] = [];
    stream.on('error', () => undefined);
    stream.on('data', (m: Buffer) => {
      const message = decodeMessage('runtime.v1.StreamContainersResponse', m) as { containers: { id: string }[] };
      ids.push(...message.containers.map((c) => c.id));
    });
    const status = await new Promise<grpc.StatusObject>((resolve) => stream.on('status', resolve));
    expect(status.code).toBe(grpc.status.OK);
    expect(ids.sort()).toEqual([a.containerId, b.containerId].sort());
  });

  test('Version from the default runtime, Status combined, UpdateRuntimeConfig to both, RuntimeConfig asked of both', async () => {
    routing = await startRoutingProxy();
    expect(ok(await routing.call('Version'))['runtime_name']).toBe('fake-containerd');
    expect(methodsCalled(routing.runtime.crio)).not.toContain('Version');
    const status = ok(await routing.call('Status'));
    // crio's own "kata" is what kubelet's "kata-fast" reaches: kubelet sees it under that name.
    expect(status['info']).toEqual({ name: 'containerd', 'crio/name': 'crio' });
    expect((status['runtime_handlers'] as { name?: string }[]).map((h) => h.name ?? '')).toEqual(['', 'runc', 'kata-fast']);
    expect((status['status'] as { conditions: unknown[] }).conditions).toEqual([
      { type: 'RuntimeReady', status: true },
      { type: 'NetworkReady', status: true },
    ]);
    ok(await routing.call('UpdateRuntimeConfig', { runtime_config: { network_config: { pod_cidr: '10.0.0.0/16' } } }));
    expect([routing.runtime.containerd.lastCall('UpdateRuntimeConfig'), routing.runtime.crio.lastCall('UpdateRuntimeConfig')]).toEqual([
      expect.anything(),
      expect.anything(),
    ]);
    // Both say the same (the default, systemd): the default runtime's answer, as it sent it.
    const seen = routing.runtime.crio.calls.length;
    expect(ok(await routing.call('RuntimeConfig'))).toEqual({});
    expect(methodsCalled(routing.runtime.crio, seen)).toEqual(['RuntimeConfig']);
  });
});

describe('images', () => {
  test('PullImage goes where its pod runs or will run; ImageStatus and RemoveImage find the image', async () => {
    routing = await startRoutingProxy();
    const onCrio = await runPod('b', 'web', { handler: 'kata-fast' });
    const crioPod = routing.cri.crio.sandboxes.get(onCrio.podId)?.config;
    ok(await routing.call('PullImage', { image: { image: 'registry.example/a:1' }, sandbox_config: crioPod }));
    ok(await routing.call('PullImage', { image: { image: 'registry.example/b:1' }, sandbox_config: sandboxConfig('new', 'sandboxed') }));
    ok(await routing.call('PullImage', { image: { image: 'registry.example/c:1', runtime_handler: 'kata-fast' } }));
    ok(await routing.call('PullImage', { image: { image: 'registry.example/d:1' } }));
    const tags = (backend: Backend): string[] => [...routing.cri[backend].images.values()].flat().sort();
    // busybox: the image of the pod's container, which routing pulled onto crio for it.
    expect(tags('crio')).toEqual(['busybox', 'registry.example/a:1', 'registry.example/b:1', 'registry.example/c:1']);
    expect(tags('containerd')).toEqual(['registry.example/d:1']);
    const pulled = routing.runtime.crio.lastCall('PullImage');
    expect(decodeMessage('runtime.v1.PullImageRequest', pulled?.requestBytes ?? Buffer.alloc(0))['image']).toEqual({
      image: 'registry.example/c:1',
      runtime_handler: 'kata',
    });

    // Without a handler, the image is found where it is.
    const status = ok(await routing.call('ImageStatus', { image: { image: 'registry.example/a:1' } }));
    expect(status['image']).toMatchObject({ repo_tags: ['registry.example/a:1'] });
    expect(ok(await routing.call('ImageStatus', { image: { image: 'registry.example/none:1' } }))['image']).toBeUndefined();
    // The same image on both runtimes: listed once, removed from both.
    ok(await routing.call('PullImage', { image: { image: 'registry.example/d:1', runtime_handler: 'kata-fast' } }));
    const listed = ok(await routing.call('ListImages'))['images'] as { repo_tags: string[] }[];
    expect(listed.map((i) => i.repo_tags[0]).sort()).toEqual([
      'busybox',
      'registry.example/a:1',
      'registry.example/b:1',
      'registry.example/c:1',
      'registry.example/d:1',
    ]);
    ok(await routing.call('RemoveImage', { image: { image: 'registry.example/d:1' } }));
    expect([tags('containerd'), tags('crio')]).toEqual([
      [],
      ['busybox', 'registry.example/a:1', 'registry.example/b:1', 'registry.example/c:1'],
    ]);
  });
});
