import { Registry } from 'prom-client';
import { routingConfigSchema } from '../../src/interceptors/routing/config';
import { RoutingDispatcher, type Decision, type RoutingCall } from '../../src/interceptors/routing/dispatch';
import { methodRoutes } from '../../src/interceptors/routing/method-routes';
import { silentLogger } from '../../src/log';
import { decodeMessage } from '../../src/messages/codec';
import { lookupMethod, methodTable } from '../../src/chain/method-table';
import { encode, fail, FakeStreams, fakeCall, listOf, ok, type Script } from '../support/fake-backends';
import { sample } from '../support/metric-samples';

const config = routingConfigSchema.parse({
  rules: [
    { name: 'kata', backend: 'crio', match: { runtimeHandlers: ['kata-*'] } },
    { backend: 'crio', match: { namespaces: ['sandboxed'] } },
  ],
  handlers: { crio: { 'kata-fast': 'kata' } },
});
const notFound = fail(5, 'not found');

function setup(script: Script = {}, backends = ['containerd', 'crio']) {
  const registry = new Registry();
  const { call, calls } = fakeCall(script);
  const streams = new FakeStreams();
  const dispatcher = new RoutingDispatcher(config, {
    backends,
    defaultBackend: 'containerd',
    call,
    stream: streams.stream,
    registry,
    log: silentLogger,
    now: () => 0,
  });
  return { dispatcher, calls, streams, registry };
}

const methodNamed = (name: string) => {
  const found = methodTable.find((m) => m.name === name);
  if (found === undefined) throw new Error(`no method ${name}`);
  return found;
};

function callOf(name: string, request: Record<string, unknown> | Buffer = {}, signal = new AbortController().signal): RoutingCall {
  const method = methodNamed(name);
  const type = method.requestType ?? '';
  return {
    method: name,
    path: method.path,
    requestType: type,
    responseType: method.responseType,
    request: Buffer.isBuffer(request) ? request : encode(type.replace('runtime.v1.', ''), request),
    deadline: 1000,
    metadata: ['traceparent', 'x'],
    signal,
    pull: () => Promise.reject(new Error('this test makes no pull')),
  };
}

function forwarded(decision: Decision): Decision & { kind: 'forward' } {
  if (decision.kind !== 'forward') throw new Error(`expected forward, got ${decision.kind}`);
  return decision;
}

const sandboxConfig = (namespace: string, uid = `${namespace}-uid`) => ({ metadata: { name: 'p', namespace, uid } });

describe('new pods', () => {
  test('placed by the rules, the handler renamed for the backend, ownership learned from the answer', async () => {
    const { dispatcher, calls, registry } = setup();
    const decision = forwarded(
      await dispatcher.decide(callOf('RunPodSandbox', { config: sandboxConfig('web'), runtime_handler: 'kata-fast' })),
    );
    expect([decision.backend, decision.rule]).toEqual(['crio', 'kata']);
    expect(decodeMessage('runtime.v1.RunPodSandboxRequest', decision.request)['runtime_handler']).toBe('kata');
    decision.onSuccess?.(decodeMessage('runtime.v1.RunPodSandboxResponse', encode('RunPodSandboxResponse', { pod_sandbox_id: 's1' })));
    expect(forwarded(await dispatcher.decide(callOf('StopPodSandbox', { pod_sandbox_id: 's1' }))).backend).toBe('crio');
    expect(calls).toEqual([]);
    expect(await sample(registry, 'cri_proxy_routing_placements_total', { backend: 'crio', rule: 'kata' })).toBe(1);
  });

  test('no rule matches: the default backend, the request untouched', async () => {
    const { dispatcher, registry } = setup();
    const call = callOf('RunPodSandbox', { config: sandboxConfig('web'), runtime_handler: 'runc' });
    const decision = forwarded(await dispatcher.decide(call));
    expect([decision.backend, decision.rule, decision.request]).toEqual(['containerd', undefined, call.request]);
    expect(await sample(registry, 'cri_proxy_routing_placements_total', { backend: 'containerd', rule: 'default' })).toBe(1);
  });

  test('RestorePod is placed the same way, and its containers are learned', async () => {
    const { dispatcher, calls } = setup();
    const decision = forwarded(
      await dispatcher.decide(callOf('RestorePod', { config: sandboxConfig('sandboxed'), checkpoint_path: '/c' })),
    );
    expect(decision.backend).toBe('crio');
    decision.onSuccess?.(
      decodeMessage(
        'runtime.v1.RestorePodResponse',
        encode('RestorePodResponse', { pod_sandbox_id: 's2', restored_containers: [{ name: 'a', container_id: 'c2' }] }),
      ),
    );
    expect(forwarded(await dispatcher.decide(callOf('StartContainer', { container_id: 'c2' }))).backend).toBe('crio');
    expect(calls).toEqual([]);
  });

  test('a request that does not decode is refused', async () => {
    const { dispatcher } = setup();
    await expect(dispatcher.decide(callOf('RunPodSandbox', Buffer.from([0x0a, 0x09])))).rejects.toMatchObject({
      code: 'MALFORMED_REQUEST',
    });
  });
});

describe('calls naming a sandbox or a container', () => {
  const idBearing = Object.entries(methodRoutes).filter(([, e]) => e.route.kind === 'sandbox' || e.route.kind === 'container');

  test.each(idBearing.map(([name, e]) => [name, e.route] as const))('%s reaches the owner, the request as sent', async (name, route) => {
    const { dispatcher, calls } = setup();
    dispatcher.ownership.learnSandbox('s1', 'crio');
    dispatcher.ownership.learnContainer('c1', 'crio', 's1');
    if (route.kind !== 'sandbox' && route.kind !== 'container') throw new Error('not ID-bearing');
    const id = route.kind === 'sandbox' ? 's1' : 'c1';
    const call = callOf(name, { [route.field]: id });
    const decision = forwarded(await dispatcher.decide(call));
    expect(decision.backend).toBe('crio');
    expect(decision.request).toBe(call.request);
    expect(calls).toEqual([]);
  });

  test("CreateContainer: to its sandbox's backend, the image handler renamed, the container learned", async () => {
    const { dispatcher } = setup();
    dispatcher.ownership.learnSandbox('s1', 'crio');
    const decision = forwarded(
      await dispatcher.decide(
        callOf('CreateContainer', { pod_sandbox_id: 's1', config: { image: { image: 'busybox', runtime_handler: 'kata-fast' } } }),
      ),
    );
    expect(decision.backend).toBe('crio');
    expect(decodeMessage('runtime.v1.CreateContainerRequest', decision.request)).toEqual({
      pod_sandbox_id: 's1',
      config: { image: { image: 'busybox', runtime_handler: 'kata' } },
    });
    decision.onSuccess?.(decodeMessage('runtime.v1.CreateContainerResponse', encode('CreateContainerResponse', { container_id: 'c9' })));
    expect(await dispatcher.ownership.owner('container', 'c9')).toEqual({ kind: 'owned', backend: 'crio' });
  });

  test('an unknown ID: asked around, then the default backend', async () => {
    const { dispatcher, calls } = setup({ containerd: { ContainerStatus: notFound }, crio: { ContainerStatus: notFound } });
    expect(forwarded(await dispatcher.decide(callOf('ContainerStatus', { container_id: 'gone' }))).backend).toBe('containerd');
    expect(calls.map((c) => [c.backend, c.method, c.deadline])).toEqual([
      ['containerd', 'ContainerStatus', 1000],
      ['crio', 'ContainerStatus', 1000],
    ]);
  });

  test('an unknown ID while a backend is down: UNAVAILABLE naming it, nothing forwarded', async () => {
    const { dispatcher } = setup({ containerd: { PodSandboxStatus: notFound } });
    const decision = await dispatcher.decide(callOf('RemovePodSandbox', { pod_sandbox_id: 'x' }));
    expect(decision).toMatchObject({
      kind: 'answer',
      answer: { from: 'proxy', answer: { code: 14, message: expect.stringContaining('backend "crio" failed') as unknown } },
    });
  });

  test('RemovePodSandbox forgets the sandbox and its containers once it succeeded', async () => {
    const { dispatcher } = setup();
    dispatcher.ownership.learnSandbox('s1', 'crio');
    dispatcher.ownership.learnContainer('c1', 'crio', 's1');
    forwarded(await dispatcher.decide(callOf('RemovePodSandbox', { pod_sandbox_id: 's1' }))).onSuccess?.(undefined);
    expect(dispatcher.ownership.size).toEqual({ sandbox: 0, container: 0, pod: 0 });
  });
});

describe('images', () => {
  test('PullImage goes where its pod runs', async () => {
    const { dispatcher } = setup();
    dispatcher.ownership.learnSandbox('s1', 'crio', 'pod-uid');
    const decision = forwarded(
      await dispatcher.decide(callOf('PullImage', { image: { image: 'busybox' }, sandbox_config: sandboxConfig('web', 'pod-uid') })),
    );
    expect(decision.backend).toBe('crio');
  });

  test('PullImage for a pod not known yet: the rules, on its sandbox config and image handler', async () => {
    const { dispatcher } = setup();
    expect(
      forwarded(await dispatcher.decide(callOf('PullImage', { image: { image: 'busybox' }, sandbox_config: sandboxConfig('sandboxed') })))
        .backend,
    ).toBe('crio');
    const byHandler = forwarded(
      await dispatcher.decide(callOf('PullImage', { image: { image: 'busybox', runtime_handler: 'kata-fast' } })),
    );
    expect(byHandler.backend).toBe('crio');
    expect(decodeMessage('runtime.v1.PullImageRequest', byHandler.request)).toEqual({
      image: { image: 'busybox', runtime_handler: 'kata' },
    });
    expect(forwarded(await dispatcher.decide(callOf('PullImage', { image: { image: 'busybox' } }))).backend).toBe('containerd');
  });

  test('ImageStatus with a handler goes by it; without, to the backend that has the image', async () => {
    const { dispatcher } = setup({
      containerd: { ImageStatus: ok(encode('ImageStatusResponse', {})) },
      crio: { ImageStatus: ok(encode('ImageStatusResponse', { image: { id: 'sha256:1' } })) },
    });
    expect(
      forwarded(await dispatcher.decide(callOf('ImageStatus', { image: { image: 'busybox', runtime_handler: 'kata-fast' } }))).backend,
    ).toBe('crio');
    expect(await dispatcher.decide(callOf('ImageStatus', { image: { image: 'busybox' } }))).toMatchObject({
      kind: 'answer',
      answer: { from: 'backend', backend: 'crio' },
    });
    expect(await dispatcher.decide(callOf('RemoveImage', { image: { image: 'busybox' } }))).toMatchObject({
      kind: 'answer',
      answer: { from: 'proxy', answer: { code: 12 } },
    });
  });
});

describe('node-wide calls', () => {
  test('Version: the default backend, untouched', async () => {
    const { dispatcher } = setup();
    const call = callOf('Version');
    expect(forwarded(await dispatcher.decide(call))).toEqual({ kind: 'forward', backend: 'containerd', request: call.request });
  });

  test('lists: merged from every backend, the default first whatever the config order', async () => {
    const c = (id: string) => encode('Container', { id });
    const { dispatcher, calls } = setup(
      { containerd: { ListContainers: ok(listOf([c('a')])) }, crio: { ListContainers: ok(listOf([c('b')])) } },
      ['crio', 'containerd'],
    );
    const decision = await dispatcher.decide(callOf('ListContainers', { filter: { state: { state: 'CONTAINER_RUNNING' } } }));
    expect(decision).toEqual({
      kind: 'answer',
      answer: { from: 'proxy', answer: { code: 0, message: '', body: listOf([c('a'), c('b')]) } },
    });
    expect(calls.map((x) => [x.backend, x.deadline])).toEqual([
      ['containerd', 1000],
      ['crio', 1000],
    ]);
  });

  test('lists with a backend down: UNAVAILABLE naming it', async () => {
    const { dispatcher } = setup({ containerd: { ListPodSandbox: ok() } });
    expect(await dispatcher.decide(callOf('ListPodSandbox'))).toMatchObject({
      kind: 'answer',
      answer: { answer: { code: 14, message: expect.stringContaining('"crio"') as unknown } },
    });
  });

  test('Status, UpdateRuntimeConfig, ImageFsInfo: answered by routing', async () => {
    const status = ok(
      encode('StatusResponse', {
        status: {
          conditions: [
            { type: 'RuntimeReady', status: true },
            { type: 'NetworkReady', status: true },
          ],
        },
      }),
    );
    const { dispatcher } = setup({
      containerd: { Status: status, UpdateRuntimeConfig: ok(), ImageFsInfo: ok() },
      crio: { Status: status, UpdateRuntimeConfig: ok(), ImageFsInfo: ok() },
    });
    for (const name of ['Status', 'UpdateRuntimeConfig', 'ImageFsInfo']) {
      expect(await dispatcher.decide(callOf(name))).toMatchObject({ kind: 'answer' });
    }
  });

  test('a method outside the table: the owner of the sandbox or container its field 1 names, if cached; else the default', async () => {
    const lists: Script = {
      crio: {
        ListPodSandbox: ok(listOf([encode('PodSandbox', { id: 's-b' })])),
        ListContainers: ok(listOf([encode('Container', { id: 'c-b', pod_sandbox_id: 's-b' })])),
      },
    };
    const { dispatcher, calls } = setup(lists);
    await dispatcher.start();
    const asked = calls.length;
    const field1 = (value: string): Buffer => encode('ContainerStatusRequest', { container_id: value });
    expect(await dispatcher.backendOfUnknown(field1('c-b'))).toBe('crio');
    expect(await dispatcher.backendOfUnknown(field1('s-b'))).toBe('crio');
    for (const other of [
      field1('nobody'),
      field1('x'.repeat(300)),
      encode('StopContainerRequest', { timeout: 3 }),
      Buffer.from([0x0a, 0x09]),
      undefined,
    ]) {
      expect(await dispatcher.backendOfUnknown(other)).toBe('containerd');
    }
    // The cache is all it goes by: nobody was asked.
    expect(calls.length).toBe(asked);
  });

  test('RuntimeConfig: asked of every backend, the default one’s answer when they agree; the start compares them too', async () => {
    const systemd = ok(encode('RuntimeConfigResponse', { linux: { cgroup_driver: 'SYSTEMD' } }));
    const cgroupfs = ok(encode('RuntimeConfigResponse', { linux: { cgroup_driver: 'CGROUPFS' } }));
    const agreeing = setup({ containerd: { RuntimeConfig: systemd }, crio: { RuntimeConfig: systemd } });
    expect(await agreeing.dispatcher.decide(callOf('RuntimeConfig'))).toEqual({
      kind: 'answer',
      answer: { from: 'backend', backend: 'containerd', reply: systemd },
    });
    expect(agreeing.calls.map((c) => [c.backend, c.method, c.deadline])).toEqual([
      ['containerd', 'RuntimeConfig', 1000],
      ['crio', 'RuntimeConfig', 1000],
    ]);
    const differing = setup({ containerd: { RuntimeConfig: systemd }, crio: { RuntimeConfig: cgroupfs } });
    await differing.dispatcher.start();
    expect(await sample(differing.registry, 'cri_proxy_routing_runtime_config_consistent')).toBe(0);
    expect(await differing.dispatcher.decide(callOf('RuntimeConfig'))).toMatchObject({
      kind: 'answer',
      answer: { from: 'proxy', answer: { code: 9 } },
    });
  });

  test('a method outside the table goes to the default backend as it is', async () => {
    const { dispatcher } = setup();
    const call: RoutingCall = {
      ...callOf('Version'),
      method: 'Future',
      path: '/runtime.v1.RuntimeService/Future',
      requestType: undefined,
      responseType: undefined,
    };
    expect(await dispatcher.decide(call)).toEqual({ kind: 'forward', backend: 'containerd', request: call.request });
    expect(lookupMethod(call.path).known).toBe(false);
  });
});

describe('streams', () => {
  test("Stream* lists: every backend's stream, merged", async () => {
    const { dispatcher, streams } = setup();
    const decision = await dispatcher.decide(callOf('StreamContainers'));
    if (decision.kind !== 'stream') throw new Error('expected a stream');
    const sent: Buffer[] = [];
    const done = decision.run((m) => {
      sent.push(m);
      return Promise.resolve();
    });
    await streams.waitForOpened(2);
    const message = listOf([encode('Container', { id: 'c1' })]);
    await streams.to('crio')[0]?.push(message);
    for (const s of streams.opened) s.end();
    expect(await done).toEqual({ code: 0, message: '', body: undefined });
    expect(sent).toEqual([message]);
  });

  test('GetContainerEvents: the merged events until the client leaves; ownership learns from them', async () => {
    const { dispatcher, streams } = setup();
    const client = new AbortController();
    const decision = await dispatcher.decide(callOf('GetContainerEvents', {}, client.signal));
    if (decision.kind !== 'stream') throw new Error('expected a stream');
    const sent: Buffer[] = [];
    const event = encode('ContainerEventResponse', {
      container_id: 'c5',
      container_event_type: 'CONTAINER_CREATED_EVENT',
      pod_sandbox_status: { id: 's5' },
    });
    const done = decision.run((m) => {
      sent.push(m);
      client.abort();
      return Promise.resolve();
    });
    await streams.waitForOpened(2);
    await streams.to('crio')[0]?.push(event);
    expect((await done).code).toBe(1);
    expect(sent).toEqual([event]);
    expect(await dispatcher.ownership.owner('container', 'c5')).toEqual({ kind: 'owned', backend: 'crio' });
    expect(dispatcher.events.subscriberCount).toBe(0);
  });

  test('GetContainerEvents: a send that fails ends the subscription', async () => {
    const { dispatcher, streams } = setup();
    const decision = await dispatcher.decide(callOf('GetContainerEvents'));
    if (decision.kind !== 'stream') throw new Error('expected a stream');
    const done = decision.run(() => Promise.reject(new Error('client gone')));
    await streams.waitForOpened(2);
    await streams.to('containerd')[0]?.push(encode('ContainerEventResponse', { container_id: 'c' }));
    expect(await done).toMatchObject({ code: 1, message: expect.stringContaining('client gone') as unknown });
    expect(dispatcher.events.subscriberCount).toBe(0);
  });

  test('close ends event subscribers UNAVAILABLE', async () => {
    const { dispatcher, streams } = setup();
    const decision = await dispatcher.decide(callOf('GetContainerEvents'));
    if (decision.kind !== 'stream') throw new Error('expected a stream');
    const done = decision.run(() => Promise.resolve());
    await streams.waitForOpened(2);
    dispatcher.close();
    expect((await done).code).toBe(14);
  });
});

test("a restart keeps every route: the new instance learns them from the backends' lists", async () => {
  const lists: Script = {
    containerd: {
      ListPodSandbox: ok(listOf([encode('PodSandbox', { id: 's-a' })])),
      ListContainers: ok(listOf([encode('Container', { id: 'c-a', pod_sandbox_id: 's-a' })])),
    },
    crio: {
      ListPodSandbox: ok(listOf([encode('PodSandbox', { id: 's-b', metadata: { uid: 'u-b' } })])),
      ListContainers: ok(listOf([encode('Container', { id: 'c-b', pod_sandbox_id: 's-b' })])),
    },
  };
  const { dispatcher, calls } = setup(lists);
  await dispatcher.start();
  const routes = await Promise.all(
    [
      callOf('StopContainer', { container_id: 'c-a' }),
      callOf('ExecSync', { container_id: 'c-b' }),
      callOf('PodSandboxStatus', { pod_sandbox_id: 's-b' }),
      callOf('PullImage', { image: { image: 'x' }, sandbox_config: { metadata: { uid: 'u-b' } } }),
    ].map(async (call) => forwarded(await dispatcher.decide(call)).backend),
  );
  expect(routes).toEqual(['containerd', 'crio', 'crio', 'crio']);
  // Only the lists were asked (and RuntimeConfig, compared at start): no owner had to be looked up.
  expect(calls.every((c) => c.method.startsWith('List') || c.method === 'RuntimeConfig')).toBe(true);
});
