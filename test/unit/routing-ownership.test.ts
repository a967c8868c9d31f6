import { Registry } from 'prom-client';
import type { BackendReply } from '../../src/interceptors/routing/backend-call';
import { methodRoutes } from '../../src/interceptors/routing/method-routes';
import { routingMetrics } from '../../src/interceptors/routing/metrics';
import { OwnershipCache, type OwnershipOptions } from '../../src/interceptors/routing/ownership';
import { silentLogger } from '../../src/log';
import { decodeMessage } from '../../src/messages/codec';
import { encode, fail, fakeCall, listOf, ok, type Script } from '../support/fake-backends';
import { sample } from '../support/metric-samples';

const BACKENDS = ['containerd', 'crio'];
const NOW = 1_000_000;

function setup(script: Script = {}, options: Partial<OwnershipOptions> = {}) {
  const registry = new Registry();
  const { call, calls } = fakeCall(script);
  const cache = new OwnershipCache({
    backends: BACKENDS,
    defaultBackend: 'containerd',
    call,
    cacheSize: 100,
    lookupTimeoutMs: 2000,
    rebuildTimeoutMs: 10_000,
    metrics: routingMetrics(registry),
    log: silentLogger,
    now: () => NOW,
    ...options,
  });
  return { cache, calls, registry };
}

const effect = (method: string) => methodRoutes[method]?.ownership ?? {};
const decode = (type: string, value: Record<string, unknown>) => decodeMessage(`runtime.v1.${type}`, encode(type, value));
const notFound = fail(5, 'not found');
const sandboxStatus = (id: string): BackendReply => ok(encode('PodSandboxStatusResponse', { status: { id } }));

describe('learning from calls', () => {
  test('RunPodSandbox: the sandbox and the pod it runs', async () => {
    const { cache, calls, registry } = setup();
    cache.apply(
      effect('RunPodSandbox'),
      'crio',
      decode('RunPodSandboxRequest', { config: { metadata: { uid: 'pod-1' } } }),
      decode('RunPodSandboxResponse', { pod_sandbox_id: 's1' }),
    );
    expect(await cache.owner('sandbox', 's1')).toEqual({ kind: 'owned', backend: 'crio' });
    expect(cache.podOwner('pod-1')).toBe('crio');
    expect(cache.podOwner('pod-2')).toBeUndefined();
    expect(calls).toEqual([]);
    expect(await sample(registry, 'cri_proxy_routing_ownership_lookups_total', { kind: 'sandbox', result: 'hit' })).toBe(1);
    expect(await sample(registry, 'cri_proxy_routing_ownership_lookups_total', { kind: 'pod', result: 'miss' })).toBe(1);
    expect(await sample(registry, 'cri_proxy_routing_ownership_entries', { kind: 'sandbox' })).toBe(1);
  });

  test('CreateContainer: the container belongs where its sandbox is; removing the sandbox forgets both', async () => {
    const { cache } = setup({
      containerd: { PodSandboxStatus: notFound, ContainerStatus: notFound },
      crio: { PodSandboxStatus: notFound, ContainerStatus: notFound },
    });
    cache.learnSandbox('s1', 'crio');
    cache.apply(
      effect('CreateContainer'),
      'crio',
      decode('CreateContainerRequest', { pod_sandbox_id: 's1' }),
      decode('CreateContainerResponse', { container_id: 'c1' }),
    );
    cache.apply(
      effect('CreateContainer'),
      'crio',
      decode('CreateContainerRequest', { pod_sandbox_id: 's1' }),
      decode('CreateContainerResponse', { container_id: 'c2' }),
    );
    expect(await cache.owner('container', 'c1')).toEqual({ kind: 'owned', backend: 'crio' });
    cache.apply(effect('RemovePodSandbox'), 'crio', decode('RemovePodSandboxRequest', { pod_sandbox_id: 's1' }), undefined);
    expect(cache.size).toEqual({ sandbox: 0, container: 0, pod: 0 });
    expect(await cache.owner('container', 'c2')).toEqual({ kind: 'unknown', backend: 'containerd' });
  });

  test('RestorePod: the sandbox and every restored container', async () => {
    const { cache } = setup();
    cache.apply(
      effect('RestorePod'),
      'crio',
      decode('RestorePodRequest', { config: { metadata: { uid: 'pod-r' } } }),
      decode('RestorePodResponse', {
        pod_sandbox_id: 's9',
        restored_containers: [
          { name: 'a', container_id: 'ca' },
          { name: 'b', container_id: 'cb' },
        ],
      }),
    );
    expect(await Promise.all([cache.owner('sandbox', 's9'), cache.owner('container', 'ca'), cache.owner('container', 'cb')])).toEqual([
      { kind: 'owned', backend: 'crio' },
      { kind: 'owned', backend: 'crio' },
      { kind: 'owned', backend: 'crio' },
    ]);
    expect(cache.podOwner('pod-r')).toBe('crio');
    cache.apply(effect('RemovePodSandbox'), 'crio', decode('RemovePodSandboxRequest', { pod_sandbox_id: 's9' }), undefined);
    expect(cache.size.container).toBe(0);
  });

  test('RemoveContainer forgets the container only', async () => {
    const { cache } = setup();
    cache.learnSandbox('s1', 'crio');
    cache.learnContainer('c1', 'crio', 's1');
    cache.apply(effect('RemoveContainer'), 'crio', decode('RemoveContainerRequest', { container_id: 'c1' }), undefined);
    expect(cache.size).toEqual({ sandbox: 1, container: 0, pod: 0 });
    expect(await cache.owner('sandbox', 's1')).toEqual({ kind: 'owned', backend: 'crio' });
  });

  test("container events: what they name is their backend's; deleted containers are forgotten", async () => {
    const { cache, calls } = setup();
    const event = (type: string, containerId: string, sandboxId?: string): Buffer =>
      encode('ContainerEventResponse', {
        container_id: containerId,
        container_event_type: type,
        pod_sandbox_status: sandboxId === undefined ? undefined : { id: sandboxId, metadata: { uid: 'pod-e' } },
      });
    cache.learnFromEvent('crio', event('CONTAINER_CREATED_EVENT', 's5', 's5'));
    cache.learnFromEvent('crio', event('CONTAINER_STARTED_EVENT', 'c5', 's5'));
    expect(cache.size).toEqual({ sandbox: 1, container: 1, pod: 1 });
    expect(await cache.owner('container', 'c5')).toEqual({ kind: 'owned', backend: 'crio' });
    expect(cache.podOwner('pod-e')).toBe('crio');
    cache.learnFromEvent('crio', event('CONTAINER_DELETED_EVENT', 'c5', 's5'));
    expect(cache.size.container).toBe(0);
    cache.forgetSandbox('s5');
    cache.learnFromEvent('crio', event('CONTAINER_DELETED_EVENT', 'c6'));
    expect(cache.size).toEqual({ sandbox: 0, container: 0, pod: 1 });
    expect(calls).toEqual([]);
  });

  test('empty IDs are never learned', () => {
    const { cache } = setup();
    cache.apply(effect('RunPodSandbox'), 'crio', decode('RunPodSandboxRequest', {}), decode('RunPodSandboxResponse', {}));
    cache.learnContainer('', 'crio');
    expect(cache.size).toEqual({ sandbox: 0, container: 0, pod: 0 });
  });
});

describe('a miss', () => {
  test('is settled by asking every backend, then cached', async () => {
    const { cache, calls, registry } = setup({
      containerd: { ContainerStatus: notFound },
      crio: { ContainerStatus: ok(encode('ContainerStatusResponse', { status: { id: 'c7' } })) },
    });
    expect(await cache.owner('container', 'c7', NOW + 500)).toEqual({ kind: 'owned', backend: 'crio' });
    expect(calls.map((c) => [c.backend, c.method, decodeMessage('runtime.v1.ContainerStatusRequest', c.request), c.deadline])).toEqual([
      ['containerd', 'ContainerStatus', { container_id: 'c7' }, NOW + 500],
      ['crio', 'ContainerStatus', { container_id: 'c7' }, NOW + 500],
    ]);
    expect(await cache.owner('container', 'c7')).toEqual({ kind: 'owned', backend: 'crio' });
    expect(calls).toHaveLength(2);
    expect(await sample(registry, 'cri_proxy_routing_ownership_lookups_total', { kind: 'container', result: 'miss' })).toBe(1);
    expect(await sample(registry, 'cri_proxy_routing_ownership_lookups_total', { kind: 'container', result: 'hit' })).toBe(1);
    expect(await sample(registry, 'cri_proxy_routing_ownership_resolutions_total', { kind: 'container', result: 'found' })).toBe(1);
  });

  test('without a call deadline, the lookup timeout bounds it', async () => {
    const { cache, calls } = setup({ containerd: { PodSandboxStatus: sandboxStatus('s1') } });
    await cache.owner('sandbox', 's1');
    expect(calls[0]?.deadline).toBe(NOW + 2000);
    await cache.owner('sandbox', 's2', NOW + 99_999);
    expect(calls[2]?.deadline).toBe(NOW + 2000);
  });

  test('an ID no backend knows goes to the default backend, and is not cached', async () => {
    const { cache, calls, registry } = setup({ containerd: { PodSandboxStatus: notFound }, crio: { PodSandboxStatus: notFound } });
    expect(await cache.owner('sandbox', 'gone')).toEqual({ kind: 'unknown', backend: 'containerd' });
    expect(await cache.owner('sandbox', 'gone')).toEqual({ kind: 'unknown', backend: 'containerd' });
    expect(calls).toHaveLength(4);
    expect(await sample(registry, 'cri_proxy_routing_ownership_resolutions_total', { kind: 'sandbox', result: 'unknown' })).toBe(2);
  });

  test('a backend that cannot be asked makes the call fail, naming it (the ID may be its)', async () => {
    const { cache, registry } = setup({ containerd: { PodSandboxStatus: notFound } });
    const owner = await cache.owner('sandbox', 's1');
    expect(owner).toEqual({
      kind: 'unavailable',
      answer: {
        code: 14,
        message:
          'cri-proxy: cannot tell which backend owns sandbox "s1": backend "crio" failed: UNAVAILABLE: runtime "crio" at unix:///run/crio.sock is unavailable: connect ENOENT',
        body: undefined,
      },
    });
    expect(await sample(registry, 'cri_proxy_routing_ownership_resolutions_total', { kind: 'sandbox', result: 'unavailable' })).toBe(1);
  });

  test('a backend that has it wins even while another cannot be asked', async () => {
    const { cache } = setup({ crio: { PodSandboxStatus: sandboxStatus('s1') } });
    expect(await cache.owner('sandbox', 's1')).toEqual({ kind: 'owned', backend: 'crio' });
  });

  test('concurrent misses for one ID ask the backends once', async () => {
    let release: (reply: BackendReply) => void = () => undefined;
    const { cache, calls } = setup({
      containerd: { PodSandboxStatus: notFound },
      crio: { PodSandboxStatus: () => new Promise<BackendReply>((resolve) => (release = resolve)) },
    });
    const first = cache.owner('sandbox', 's1');
    const second = cache.owner('sandbox', 's1');
    await new Promise((resolve) => setImmediate(resolve));
    release(sandboxStatus('s1'));
    expect(await Promise.all([first, second])).toEqual([
      { kind: 'owned', backend: 'crio' },
      { kind: 'owned', backend: 'crio' },
    ]);
    expect(calls).toHaveLength(2);
  });

  test("an empty ID is nobody's: the default backend answers, no backend is asked", async () => {
    const { cache, calls } = setup();
    expect(await cache.owner('container', '')).toEqual({ kind: 'unknown', backend: 'containerd' });
    expect(calls).toEqual([]);
  });
});

describe('rebuild at start-up', () => {
  const lists: Script = {
    containerd: {
      ListPodSandbox: ok(listOf([encode('PodSandbox', { id: 's-a', metadata: { uid: 'pod-a' } })])),
      ListContainers: ok(listOf([encode('Container', { id: 'c-a', pod_sandbox_id: 's-a' })])),
    },
    crio: {
      ListPodSandbox: ok(listOf([encode('PodSandbox', { id: 's-b', metadata: { uid: 'pod-b' } }), encode('PodSandbox', { id: 's-c' })])),
      ListContainers: ok(listOf([encode('Container', { id: 'c-b', pod_sandbox_id: 's-b' })])),
    },
  };

  test("learns every backend's sandboxes, containers and pods", async () => {
    const { cache, calls, registry } = setup(lists);
    const reports = await cache.rebuild();
    expect(reports).toEqual([
      { backend: 'containerd', ok: true, sandboxes: 1, containers: 1 },
      { backend: 'crio', ok: true, sandboxes: 2, containers: 1 },
    ]);
    expect(calls.map((c) => [c.backend, c.method, c.deadline])).toEqual([
      ['containerd', 'ListPodSandbox', NOW + 10_000],
      ['crio', 'ListPodSandbox', NOW + 10_000],
      ['containerd', 'ListContainers', NOW + 10_000],
      ['crio', 'ListContainers', NOW + 10_000],
    ]);
    const owners = await Promise.all([cache.owner('sandbox', 's-a'), cache.owner('sandbox', 's-c'), cache.owner('container', 'c-b')]);
    expect(owners.map((o) => (o.kind === 'owned' ? o.backend : o.kind))).toEqual(['containerd', 'crio', 'crio']);
    expect([cache.podOwner('pod-a'), cache.podOwner('pod-b')]).toEqual(['containerd', 'crio']);
    expect(calls).toHaveLength(4);
    expect(await sample(registry, 'cri_proxy_routing_ownership_rebuilds_total', { backend: 'crio', result: 'ok' })).toBe(1);
    // The containers of a rebuilt sandbox are forgotten with it.
    cache.forgetSandbox('s-b');
    expect(cache.size.container).toBe(1);
  });

  test('a backend that fails is counted; its objects are found on demand later', async () => {
    const { cache, registry } = setup({ containerd: lists['containerd'] ?? {} });
    const reports = await cache.rebuild();
    expect(reports[1]).toMatchObject({ backend: 'crio', ok: false, error: expect.stringContaining('UNAVAILABLE') as unknown });
    expect(await sample(registry, 'cri_proxy_routing_ownership_rebuilds_total', { backend: 'crio', result: 'failed' })).toBe(1);
    expect(await cache.owner('sandbox', 's-a')).toEqual({ kind: 'owned', backend: 'containerd' });
    expect((await cache.owner('sandbox', 's-b')).kind).toBe('unavailable');
  });

  test('a malformed list counts as a failed rebuild of that backend', async () => {
    const { cache } = setup({ ...lists, crio: { ListPodSandbox: ok(Buffer.from([0x0a, 0x09])), ListContainers: ok() } });
    const reports = await cache.rebuild();
    expect(reports.map((r) => r.ok)).toEqual([true, false]);
    expect(reports[1]?.error).toMatch(/malformed/);
  });

  test('lookups of IDs the cache does not hold wait for the rebuild', async () => {
    let release: (reply: BackendReply) => void = () => undefined;
    const { cache, calls } = setup({
      ...lists,
      crio: { ...lists['crio'], ListContainers: () => new Promise<BackendReply>((resolve) => (release = resolve)) },
    });
    const rebuilt = cache.rebuild();
    let settled = false;
    const lookup = cache.owner('container', 'c-b').then((o) => {
      settled = true;
      return o;
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(settled).toBe(false);
    release(ok(listOf([encode('Container', { id: 'c-b' })])));
    await rebuilt;
    expect(await lookup).toEqual({ kind: 'owned', backend: 'crio' });
    expect(calls.filter((c) => c.method === 'ContainerStatus')).toEqual([]);
  });
});

test('eviction: the cache stays bounded, evictions are counted, an evicted ID is found again', async () => {
  const { cache, calls, registry } = setup(
    {
      containerd: { PodSandboxStatus: notFound },
      crio: {
        PodSandboxStatus: (req) => sandboxStatus(String(decodeMessage('runtime.v1.PodSandboxStatusRequest', req)['pod_sandbox_id'])),
      },
    },
    { cacheSize: 16 },
  );
  for (let i = 0; i < 20; i++) cache.learnSandbox(`s${i}`, 'crio');
  expect(cache.size.sandbox).toBe(16);
  expect(await sample(registry, 'cri_proxy_routing_ownership_evictions_total', { kind: 'sandbox' })).toBe(4);
  expect(await sample(registry, 'cri_proxy_routing_ownership_entries', { kind: 'sandbox' })).toBe(16);
  expect(await cache.owner('sandbox', 's19')).toEqual({ kind: 'owned', backend: 'crio' });
  expect(calls).toEqual([]);
  expect(await cache.owner('sandbox', 's0')).toEqual({ kind: 'owned', backend: 'crio' });
  expect(calls.map((c) => c.backend)).toEqual(['containerd', 'crio']);
  // Forgetting is not evicting.
  cache.forgetSandbox('s0');
  expect(await sample(registry, 'cri_proxy_routing_ownership_evictions_total', { kind: 'sandbox' })).toBe(5);
});
