/** Routing when things go wrong: a runtime down, the proxy restarting with pods in flight, event streams breaking. */
import * as grpc from '@grpc/grpc-js';
import { decodeMessage } from '../../src/messages/codec';
import { sample } from '../support/metric-samples';
import { callVia, methodOf, ok, sandboxConfig, startRoutingProxy, type Backend, type RoutingProxy } from '../support/routing-proxy';
import { eventually, waitFor } from '../support/wait';

jest.setTimeout(60_000);

let routing: RoutingProxy;
afterEach(async () => {
  await routing.close();
});

async function runPod(name: string, namespace: string): Promise<{ podId: string; containerId: string }> {
  const config = sandboxConfig(name, namespace);
  const podId = ok(await routing.call('RunPodSandbox', { config }))['pod_sandbox_id'] as string;
  const request = { pod_sandbox_id: podId, sandbox_config: config, config: { metadata: { name: 'main' }, image: { image: 'busybox' } } };
  return { podId, containerId: ok(await routing.call('CreateContainer', request))['container_id'] as string };
}

async function stopRuntime(backend: Backend): Promise<void> {
  routing.cri[backend].endEvents();
  await routing.runtime[backend].stop();
}

describe('a runtime down', () => {
  test('lists fail UNAVAILABLE naming it, calls for the other runtime’s pods keep working, and all recovers', async () => {
    routing = await startRoutingProxy();
    const up = await runPod('a', 'web');
    const down = await runPod('b', 'sandboxed');
    await stopRuntime('crio');

    for (const method of ['ListPodSandbox', 'ListContainers', 'ListContainerStats', 'ListImages', 'ImageFsInfo']) {
      const reply = await routing.call(method);
      expect([method, reply.code]).toEqual([method, grpc.status.UNAVAILABLE]);
      expect(reply.details).toMatch(
        new RegExp(`^cri-proxy: ${method} needs every backend; backend "crio" failed: UNAVAILABLE: runtime "crio" at unix://`),
      );
      expect(reply.details).toContain(routing.runtime.crio.socketPath);
      expect(reply.response).toBeUndefined();
    }
    const stream = routing.client.serverStream(methodOf('StreamContainers').path, Buffer.alloc(0));
    stream.on('data', () => undefined);
    stream.on('error', () => undefined);
    const streamed = await new Promise<grpc.StatusObject>((resolve) => stream.on('status', resolve));
    expect([streamed.code, streamed.details]).toEqual([grpc.status.UNAVAILABLE, expect.stringContaining('backend "crio" failed')]);

    // The other runtime's pods are served as before.
    expect(ok(await routing.call('PodSandboxStatus', { pod_sandbox_id: up.podId }))['status']).toMatchObject({ id: up.podId });
    expect((ok(await routing.call('ExecSync', { container_id: up.containerId }))['stdout'] as Buffer).toString()).toBe(
      `containerd:${up.containerId}`,
    );
    expect(ok(await routing.call('Version'))['runtime_name']).toBe('fake-containerd');
    // A pod of the runtime that is down fails as a call to it would; an ID nobody holds cannot be placed.
    expect((await routing.call('ContainerStatus', { container_id: down.containerId })).code).toBe(grpc.status.UNAVAILABLE);
    const unknown = await routing.call('PodSandboxStatus', { pod_sandbox_id: 'nobody-has-this' });
    expect([unknown.code, unknown.details]).toEqual([
      grpc.status.UNAVAILABLE,
      expect.stringMatching(/^cri-proxy: cannot tell which backend owns sandbox "nobody-has-this": backend "crio" failed: UNAVAILABLE/),
    ]);
    // Status still answers, and says which runtime is not ready.
    const conditions = (ok(await routing.call('Status'))['status'] as { conditions: Record<string, unknown>[] }).conditions;
    const runtimeReady = conditions.find((c) => c['type'] === 'RuntimeReady');
    expect([runtimeReady?.['status'], runtimeReady?.['reason']]).toEqual([undefined, 'BackendUnavailable']);
    expect(runtimeReady?.['message']).toMatch(/^backend "crio": did not answer Status: UNAVAILABLE/);

    await routing.runtime.crio.start();
    const pods = ok(await routing.call('ListPodSandbox'))['items'] as { id: string }[];
    expect(pods.map((p) => p.id)).toEqual([up.podId, down.podId]);
    expect(ok(await routing.call('ContainerStatus', { container_id: down.containerId }))['status']).toMatchObject({ id: down.containerId });
  });
});

describe('a proxy restart', () => {
  test('with pods being created on both runtimes keeps every route: the new proxy rebuilds them from the lists', async () => {
    routing = await startRoutingProxy();
    let churning = true;
    let created = 0;
    // Like kubelet: a call the restart cut off is tried again (on a new connection once the proxy is back).
    const retrying = async (method: string, request: Record<string, unknown>): Promise<Record<string, unknown>> => {
      for (;;) {
        const reply = await callVia(routing.client, method, request, {}, { waitForReady: true });
        if (reply.code === grpc.status.OK) return reply.response ?? {};
        if (reply.code !== grpc.status.UNAVAILABLE && reply.code !== grpc.status.CANCELLED)
          throw new Error(`${method}: ${reply.code} ${reply.details}`);
      }
    };
    const worker = async (w: number): Promise<void> => {
      for (let i = 0; churning; i++) {
        const config = sandboxConfig(`w${w}-${i}`, i % 2 === 0 ? 'web' : 'sandboxed');
        const podId = (await retrying('RunPodSandbox', { config }))['pod_sandbox_id'] as string;
        await retrying('CreateContainer', { pod_sandbox_id: podId, sandbox_config: config, config: { metadata: { name: 'c' } } });
        created++;
      }
    };
    const workers = [0, 1, 2, 3].map(worker);
    await waitFor(() => created >= 12, 20_000);
    await routing.proxy.restart(5000);
    const afterRestart = created;
    await waitFor(() => created >= afterRestart + 12, 20_000);
    churning = false;
    await Promise.all(workers);

    const registry = routing.registry();
    for (const backend of ['containerd', 'crio'] as const) {
      expect(await sample(registry, 'cri_proxy_routing_ownership_rebuilds_total', { backend, result: 'ok' })).toBe(1);
      const fake = routing.cri[backend];
      expect(fake.sandboxes.size).toBeGreaterThan(6);
      for (const id of fake.sandboxes.keys())
        expect(ok(await routing.call('PodSandboxStatus', { pod_sandbox_id: id }))['status']).toMatchObject({ id });
      for (const id of fake.containers.keys())
        expect(ok(await routing.call('ContainerStatus', { container_id: id }))['status']).toMatchObject({ id });
    }
    // Every route was known: from the rebuild, or learned from the answers since. No runtime had to be asked.
    expect(await sample(registry, 'cri_proxy_routing_ownership_lookups_total', { kind: 'sandbox', result: 'miss' })).toBeUndefined();
    expect(await sample(registry, 'cri_proxy_routing_ownership_lookups_total', { kind: 'container', result: 'miss' })).toBeUndefined();
    expect(await sample(registry, 'cri_proxy_routing_ownership_resolutions_total')).toBeUndefined();
  });
});

describe('GetContainerEvents', () => {
  interface Subscriber {
    readonly events: { id: string; type: string }[];
    ended: grpc.StatusObject | undefined;
    has(id: string, type: string): boolean;
    cancel(): void;
  }

  function subscribe(): Subscriber {
    const stream = routing.client.serverStream(methodOf('GetContainerEvents').path, Buffer.alloc(0));
    const subscriber: Subscriber = {
      events: [],
      ended: undefined,
      has: (id, type) => subscriber.events.some((e) => e.id === id && e.type === type),
      cancel: () => stream.cancel(),
    };
    stream.on('data', (m: Buffer) => {
      const event = decodeMessage('runtime.v1.ContainerEventResponse', m);
      subscriber.events.push({ id: event['container_id'] as string, type: event['container_event_type'] as string });
    });
    stream.on('error', () => undefined);
    stream.on('status', (status: grpc.StatusObject) => (subscriber.ended = status));
    return subscriber;
  }

  /** Event streams the fake runtime serves right now. */
  const upstreams = (backend: Backend): number => routing.cri[backend].eventSubscribers;

  test('merges both runtimes’ events into each subscriber; a broken upstream reconnects while subscribers stay', async () => {
    routing = await startRoutingProxy();
    const first = subscribe();
    await waitFor(() => upstreams('containerd') === 1 && upstreams('crio') === 1);
    const second = subscribe();
    await eventually(async () => (await sample(routing.registry(), 'cri_proxy_routing_event_subscribers')) === 2);
    // One stream per runtime, however many subscribe.
    expect([upstreams('containerd'), upstreams('crio')]).toEqual([1, 1]);

    const a = await runPod('a', 'web');
    const b = await runPod('b', 'sandboxed');
    const everyone = (id: string, type: string): boolean => first.has(id, type) && second.has(id, type);
    await waitFor(() => everyone(a.containerId, 'CONTAINER_CREATED_EVENT') && everyone(b.containerId, 'CONTAINER_CREATED_EVENT'));
    expect(everyone(a.podId, 'CONTAINER_STARTED_EVENT') && everyone(b.podId, 'CONTAINER_STARTED_EVENT')).toBe(true);

    await stopRuntime('crio');
    await routing.runtime.crio.start();
    // The proxy opens a new stream to crio by itself; the subscribers never noticed.
    await waitFor(() => upstreams('crio') === 1);
    expect(
      await sample(routing.registry(), 'cri_proxy_routing_event_upstream_reconnects_total', { backend: 'crio' }),
    ).toBeGreaterThanOrEqual(1);
    ok(await routing.call('StartContainer', { container_id: b.containerId }));
    await waitFor(() => everyone(b.containerId, 'CONTAINER_STARTED_EVENT'));
    expect([first.ended, second.ended, upstreams('containerd')]).toEqual([undefined, undefined, 1]);
    first.cancel();
    second.cancel();
  });
});
