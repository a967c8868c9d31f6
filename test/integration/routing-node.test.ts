/**
 * What routing answers for the node as a whole, in front of two fake runtimes: RuntimeConfig asked of both, Status
 * keeping what the proxy does not know, merged answers kubelet could not take, and methods outside the table.
 */
import * as grpc from '@grpc/grpc-js';
import { encodeMessage } from '../../src/messages/codec';
import { lengthDelimited, messageAt, wireFields } from '../../src/messages/protobuf-wire';
import { sample } from '../support/metric-samples';
import { callVia, methodsCalled, ok, sandboxConfig, startRoutingProxy, type Backend, type RoutingProxy } from '../support/routing-proxy';
import { eventually } from '../support/wait';

jest.setTimeout(30_000);

let routing: RoutingProxy;
afterEach(async () => {
  await routing.close();
});

const encode = (type: string, value: Record<string, unknown>): Buffer => encodeMessage(`runtime.v1.${type}`, value);
const MIB = 1024 * 1024;

async function runPod(name: string, namespace: string): Promise<{ podId: string; containerId: string }> {
  const config = sandboxConfig(name, namespace);
  const podId = ok(await routing.call('RunPodSandbox', { config }))['pod_sandbox_id'] as string;
  const created = ok(
    await routing.call('CreateContainer', { pod_sandbox_id: podId, sandbox_config: config, config: { metadata: { name: 'c' } } }),
  );
  return { podId, containerId: created['container_id'] as string };
}

describe('RuntimeConfig', () => {
  const cgroupfs = { respond: encode('RuntimeConfigResponse', { linux: { cgroup_driver: 'CGROUPFS' } }) };
  const systemd = { respond: encode('RuntimeConfigResponse', { linux: { cgroup_driver: 'SYSTEMD' } }) };

  test('backends that disagree: RuntimeConfig fails naming both, Status says so; once they agree, both are as before', async () => {
    routing = await startRoutingProxy();
    routing.runtime.containerd.on('RuntimeConfig', systemd);
    routing.runtime.crio.on('RuntimeConfig', cgroupfs);

    const refused = await routing.call('RuntimeConfig');
    expect([refused.code, refused.details]).toEqual([
      grpc.status.FAILED_PRECONDITION,
      'cri-proxy: the backends disagree on RuntimeConfig (backend "containerd": cgroup driver systemd; backend "crio": ' +
        'cgroup driver cgroupfs); pods of one of them would run with the wrong settings, so none is answered: configure every runtime alike',
    ]);
    const conditions = (ok(await routing.call('Status'))['status'] as { conditions: Record<string, unknown>[] }).conditions;
    expect(conditions).toEqual([
      { type: 'RuntimeReady', status: true },
      { type: 'NetworkReady', status: true },
      {
        type: 'RuntimeConfigConsistent',
        reason: 'RuntimeConfigMismatch',
        message: 'backend "containerd": cgroup driver systemd; backend "crio": cgroup driver cgroupfs',
      },
    ]);
    expect(await sample(routing.registry(), 'cri_proxy_routing_runtime_config_consistent')).toBe(0);

    routing.runtime.crio.on('RuntimeConfig', systemd);
    const agreed = await routing.call('RuntimeConfig');
    // The default runtime's answer, as it sent it.
    expect([agreed.code, agreed.bytes]).toEqual([grpc.status.OK, systemd.respond]);
    const after = (ok(await routing.call('Status'))['status'] as { conditions: { type: string }[] }).conditions;
    expect(after.map((c) => c.type)).toEqual(['RuntimeReady', 'NetworkReady']);
    expect(await sample(routing.registry(), 'cri_proxy_routing_runtime_config_consistent')).toBe(1);
  });

  test('a proxy starting in front of backends that disagree says so at once', async () => {
    routing = await startRoutingProxy();
    routing.runtime.crio.on('RuntimeConfig', cgroupfs);
    await routing.proxy.restart();
    await eventually(async () => (await sample(routing.registry(), 'cri_proxy_routing_runtime_config_consistent')) === 0);
  });

  test('a backend without RuntimeConfig has nothing to disagree with: the others answer; none has it: UNIMPLEMENTED', async () => {
    routing = await startRoutingProxy();
    routing.runtime.containerd.on('RuntimeConfig', { fail: { code: grpc.status.UNIMPLEMENTED, message: 'unknown method' } });
    routing.runtime.crio.on('RuntimeConfig', cgroupfs);
    const answered = await routing.call('RuntimeConfig');
    expect([answered.code, answered.bytes]).toEqual([grpc.status.OK, cgroupfs.respond]);
    routing.runtime.crio.on('RuntimeConfig', { fail: { code: grpc.status.UNIMPLEMENTED, message: 'unknown method' } });
    // kubelet then takes the cgroup driver from its own configuration.
    expect((await routing.call('RuntimeConfig')).code).toBe(grpc.status.UNIMPLEMENTED);
  });

  test('a backend that cannot answer: UNAVAILABLE naming it, nothing answered for it', async () => {
    routing = await startRoutingProxy();
    await routing.runtime.crio.stop();
    const failed = await routing.call('RuntimeConfig');
    expect([failed.code, failed.details]).toEqual([
      grpc.status.UNAVAILABLE,
      expect.stringMatching(/^cri-proxy: RuntimeConfig needs every backend; backend "crio" failed: UNAVAILABLE/),
    ]);
  });
});

describe('Status', () => {
  /** RuntimeFeatures with supplemental_groups_policy and, when `future`, a flag of a newer schema (field 99). */
  const features = (future: boolean): Buffer =>
    Buffer.concat([
      encode('RuntimeFeatures', { supplemental_groups_policy: true }),
      future ? Buffer.from([0x98, 0x06, 0x01]) : Buffer.alloc(0),
    ]);
  const status = (future: boolean, name: string): Buffer =>
    Buffer.concat([
      encode('StatusResponse', {
        status: {
          conditions: [
            { type: 'RuntimeReady', status: true },
            { type: 'NetworkReady', status: true },
          ],
        },
        info: { name },
      }),
      lengthDelimited(4, features(future)),
    ]);
  const featureFields = (body: Buffer | undefined): number[] =>
    wireFields(messageAt(body ?? Buffer.alloc(0), [4]) ?? Buffer.alloc(0)).map((f) => f.number);

  test('a feature flag this schema does not know survives the merge when every runtime has it, as it was sent', async () => {
    routing = await startRoutingProxy();
    routing.runtime.containerd.on('Status', { respond: status(true, 'containerd') });
    routing.runtime.crio.on('Status', { respond: status(true, 'crio') });
    const both = await routing.call('Status');
    expect(featureFields(both.bytes)).toEqual([1, 99]);
    expect(messageAt(both.bytes ?? Buffer.alloc(0), [4])).toEqual(features(true));
    expect(both.response?.['features']).toEqual({ supplemental_groups_policy: true });

    // Only one runtime has it: kubelet must not count on it for pods of the other.
    routing.runtime.crio.on('Status', { respond: status(false, 'crio') });
    expect(featureFields((await routing.call('Status')).bytes)).toEqual([1]);
  });
});

describe('merged answers larger than kubelet takes', () => {
  /** A ListContainers answer of about `mib` MiB: one container with a label that big. */
  const bigList = (backend: Backend, mib: number): Buffer =>
    encode('ListContainersResponse', { containers: [{ id: `${backend}-big`, labels: { blob: 'x'.repeat(mib * MIB) } }] });

  test('over 16 MiB: RESOURCE_EXHAUSTED naming the size and every backend’s share, counted; under it: sent', async () => {
    routing = await startRoutingProxy();
    routing.runtime.containerd.on('ListContainers', { respond: bigList('containerd', 9) });
    routing.runtime.crio.on('ListContainers', { respond: bigList('crio', 8) });
    const refused = await routing.call('ListContainers');
    expect([refused.code, refused.bytes]).toEqual([grpc.status.RESOURCE_EXHAUSTED, undefined]);
    expect(refused.details).toMatch(
      /^cri-proxy: the ListContainers answer merged from every backend is 17\.0 MiB \(\d+ bytes\), over the 16\.0 MiB \(16777216 bytes\) a client accepts \(maxMergedAnswerBytes\): backend "containerd" answered 9\.0 MiB \(\d+ bytes\), backend "crio" answered 8\.0 MiB \(\d+ bytes\)$/,
    );
    expect(await sample(routing.registry(), 'cri_proxy_routing_merged_answers_too_large_total', { method: 'ListContainers' })).toBe(1);

    routing.runtime.crio.on('ListContainers', { respond: bigList('crio', 6) });
    const sent = ok(await routing.call('ListContainers'));
    expect((sent['containers'] as { id: string }[]).map((c) => c.id)).toEqual(['containerd-big', 'crio-big']);
  });
});

describe('methods outside the table', () => {
  const FUTURE = '/runtime.v2.RuntimeService/ContainerFutureThing';
  /** A request of a method the proxy does not know: the ID in field 1, as in every scoped CRI method; field 2 besides. */
  const futureRequest = (id: string): Buffer =>
    Buffer.concat([lengthDelimited(1, Buffer.from(id)), lengthDelimited(2, Buffer.from('more'))]);
  const callFuture = async (request: Buffer): Promise<grpc.status> => (await routing.client.unary(FUTURE, request)).status.code;

  test('go to the owner of the sandbox or container their first field names, the request untouched; else the default', async () => {
    routing = await startRoutingProxy({ extraMethods: [FUTURE] });
    const onCrio = await runPod('b', 'sandboxed');
    const onContainerd = await runPod('a', 'web');
    const reached = (): Record<Backend, number> => ({
      containerd: methodsCalled(routing.runtime.containerd).filter((m) => m === FUTURE).length,
      crio: methodsCalled(routing.runtime.crio).filter((m) => m === FUTURE).length,
    });
    const cases: readonly [Buffer, Backend][] = [
      [futureRequest(onCrio.containerId), 'crio'],
      [futureRequest(onCrio.podId), 'crio'],
      [futureRequest(onContainerd.containerId), 'containerd'],
      // No ID the cache holds (nobody is asked: it may be no ID at all), field 1 not a string, nothing at all.
      [futureRequest('registry.example/app:1'), 'containerd'],
      [Buffer.from([0x08, 0x01]), 'containerd'],
      [Buffer.alloc(0), 'containerd'],
    ];
    for (const [request, backend] of cases) {
      const before = reached();
      expect(await callFuture(request)).toBe(grpc.status.OK);
      const after = reached();
      expect([after.containerd - before.containerd, after.crio - before.crio]).toEqual(backend === 'crio' ? [0, 1] : [1, 0]);
      expect(routing.runtime[backend].lastCall(FUTURE)?.requestBytes).toEqual(request);
    }
    // After a restart, the routes come from the runtimes' lists.
    await routing.proxy.restart();
    expect(await callVia(routing.client, 'Version', {}, {}, { waitForReady: true })).toMatchObject({ code: grpc.status.OK });
    const before = routing.runtime.crio.calls.length;
    expect(await callFuture(futureRequest(onCrio.containerId))).toBe(grpc.status.OK);
    expect(methodsCalled(routing.runtime.crio, before)).toEqual([FUTURE]);
  });

  test('a streaming one is routed by its first message, and its later messages go up as the client sends them', async () => {
    const CHAT = '/runtime.v2.RuntimeService/ContainerChat';
    routing = await startRoutingProxy();
    const onCrio = await runPod('b', 'sandboxed');
    // crio is now a runtime with a bidirectional method the proxy does not know: it echoes every message.
    await routing.runtime.crio.stop();
    const server = new grpc.Server();
    const identity = (b: Buffer): Buffer => b;
    server.register(
      CHAT,
      (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
        call.on('data', (m: Buffer) => call.write(m));
        call.on('end', () => call.end());
      },
      identity,
      identity,
      'bidi',
    );
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(routing.runtime.crio.target, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
    );
    try {
      const call = routing.client.client.makeBidiStreamRequest(CHAT, identity, identity);
      const echoes: Buffer[] = [];
      let wake: (() => void) | undefined;
      call.on('data', (m: Buffer) => {
        echoes.push(m);
        wake?.();
      });
      const echoed = async (count: number): Promise<void> => {
        while (echoes.length < count) await new Promise<void>((resolve) => (wake = resolve));
      };
      const first = futureRequest(onCrio.containerId);
      call.write(first);
      // The second message is sent only once the first came back: the proxy did not wait for the request to end.
      await echoed(1);
      call.write(Buffer.from('second'));
      await echoed(2);
      call.end();
      const status = await new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
      expect([status.code, echoes]).toEqual([grpc.status.OK, [first, Buffer.from('second')]]);
    } finally {
      server.forceShutdown();
    }
  });
});
