/**
 * Routing through the built cri-proxy command in front of two real runtimes: one private containerd running
 * runc, one running crun. What lands where is checked on each runtime's own socket and state.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runtimeContainers } from './harness/containerd';
import { bufferField, createCriClient, listField, numberField, stringField, type CriClient, type CriMessage } from './harness/cri-client';
import { startEnvironment, type ContainerdInstance, type E2eEnvironment } from './harness/environment';
import { execOverWebSocket } from './harness/exec-websocket';
import { freePort, waitUntil } from './harness/processes';
import { restartProxy, startProxy, type RunningProxy } from './harness/proxy';

jest.setTimeout(300_000);

type Backend = 'runc' | 'crun';

interface Pod {
  readonly name: string;
  readonly namespace: string;
  readonly handler: string;
  readonly backend: Backend;
  podId: string;
  containerId: string;
}

const pods: Pod[] = [
  { name: 'on-runc', namespace: 'e2e', handler: '', backend: 'runc', podId: '', containerId: '' },
  { name: 'by-class', namespace: 'e2e', handler: 'crun-fast', backend: 'crun', podId: '', containerId: '' },
  { name: 'by-namespace', namespace: 'e2e-crun', handler: '', backend: 'crun', podId: '', containerId: '' },
];

let env: E2eEnvironment;
let instances: Record<Backend, ContainerdInstance>;
let proxy: RunningProxy;
let metricsUrl: string;
let via: CriClient;
let direct: Record<Backend, CriClient>;

const routingYaml = (port: number): string => `http:
  listen: 127.0.0.1:${port}
interceptors:
  - name: metrics
    type: metrics
    onError: failOpen
  - name: routing
    type: routing
    onError: failClosed
    config:
      rules:
        - { name: crun-class, backend: crun, match: { runtimeHandlers: ["crun", "crun-*"] } }
        - { name: crun-namespace, backend: crun, match: { namespaces: ["e2e-crun"] } }
      handlers:
        crun: { crun-fast: "" }
`;

beforeAll(async () => {
  env = await startEnvironment({
    containerds: [
      { name: 'containerd', runtime: 'runc' },
      { name: 'containerd-crun', runtime: 'crun' },
    ],
  });
  instances = { runc: env.containerd('containerd'), crun: env.containerd('containerd-crun') };
  const port = await freePort();
  metricsUrl = `http://127.0.0.1:${port}/metrics`;
  proxy = await startProxy(env, 'cri-proxy', routingYaml(port), [
    { name: 'runc', socket: instances.runc.socket },
    { name: 'crun', socket: instances.crun.socket },
  ]);
  via = createCriClient(proxy.socketPath);
  direct = { runc: createCriClient(instances.runc.socket), crun: createCriClient(instances.crun.socket) };
});

afterAll(async () => {
  via?.close();
  for (const client of Object.values(direct ?? {})) client.close();
  await env?.stop();
});

const sandboxConfig = (pod: Pod): Record<string, unknown> => ({
  metadata: { name: pod.name, namespace: pod.namespace, uid: `${pod.name}-uid`, attempt: 0 },
  log_directory: join(env.podLogDir, pod.name),
  linux: {},
});

const ids = (items: CriMessage[], key = 'id'): string[] => items.map((i) => stringField(i, key));
const byId = (items: CriMessage[]): CriMessage[] => [...items].sort((a, b) => stringField(a, 'id').localeCompare(stringField(b, 'id')));
const expectedOn = (backend: Backend, what: 'podId' | 'containerId'): string[] =>
  pods.filter((p) => p.backend === backend).map((p) => p[what]);

async function failure(call: Promise<CriMessage>): Promise<{ code: number; details: string }> {
  try {
    await call;
  } catch (err) {
    const { code, details } = err as { code: number; details: string };
    return { code, details };
  }
  throw new Error('the call was expected to fail');
}

/** The image's ID on a runtime, or undefined when it does not have it. */
async function imageOn(client: CriClient, image: string): Promise<string | undefined> {
  const status = await client.call('ImageStatus', { image: { image } });
  const found = status['image'] as CriMessage | null | undefined;
  return found ? stringField(found, 'id') : undefined;
}

test('kubelet’s own image flow: an image on one runtime only, a pod placed on the other: its container starts there', async () => {
  // Another pod's image, on the runc containerd only (pulled on its own socket, around the proxy).
  await direct.runc.call('PullImage', { image: { image: env.busyboxImage } });
  expect(await imageOn(direct.crun, env.busyboxImage)).toBeUndefined();
  const pod: Pod = { name: 'kubelet-flow', namespace: 'e2e-crun', handler: '', backend: 'crun', podId: '', containerId: '' };
  const config = sandboxConfig(pod);
  pod.podId = stringField(await via.call('RunPodSandbox', { config }), 'pod_sandbox_id');
  // EnsureImageExists, imagePullPolicy IfNotPresent: ImageStatus (no pod, no handler) says present, so no PullImage.
  const imageId = await imageOn(via, env.busyboxImage);
  expect(imageId).toMatch(/^sha256:/);
  const created = await via.call('CreateContainer', {
    pod_sandbox_id: pod.podId,
    sandbox_config: config,
    config: {
      metadata: { name: 'main', attempt: 0 },
      image: { image: imageId, user_specified_image: env.busyboxImage },
      command: ['sh', '-c', `echo hello from ${pod.name}; sleep 3600`],
      log_path: 'main.log',
      linux: {},
    },
  });
  pod.containerId = stringField(created, 'container_id');
  await via.call('StartContainer', { container_id: pod.containerId });
  pods.push(pod);
  // The proxy pulled the image onto crun for the pod: the same image, by the same ID.
  expect(await imageOn(direct.crun, env.busyboxImage)).toBe(imageId);
  const status = await direct.crun.call('ContainerStatus', { container_id: pod.containerId });
  expect(stringField(status, 'status.state')).toBe('CONTAINER_RUNNING');
  expect(await runtimeContainers('crun', instances.crun.runtimeRoot('crun'))).toEqual(expect.arrayContaining([pod.podId, pod.containerId]));
  const metrics = await (await fetch(metricsUrl)).text();
  expect(metrics).toContain('cri_proxy_routing_missing_images_total{backend="crun",outcome="pulled"} 1');
});

test('pods land on the runtime the rules pick, as each runtime’s own socket and state show', async () => {
  for (const pod of pods.filter((p) => p.podId === '')) {
    const config = sandboxConfig(pod);
    pod.podId = stringField(await via.call('RunPodSandbox', { config, runtime_handler: pod.handler }), 'pod_sandbox_id');
    // kubelet pulls for the pod: the image goes where the pod runs.
    await via.call('PullImage', { image: { image: env.busyboxImage }, sandbox_config: config });
    const created = await via.call('CreateContainer', {
      pod_sandbox_id: pod.podId,
      sandbox_config: config,
      config: {
        metadata: { name: 'main', attempt: 0 },
        image: { image: env.busyboxImage },
        command: ['sh', '-c', `echo hello from ${pod.name}; sleep 3600`],
        log_path: 'main.log',
        linux: {},
      },
    });
    pod.containerId = stringField(created, 'container_id');
    await via.call('StartContainer', { container_id: pod.containerId });
  }
  for (const backend of ['runc', 'crun'] as const) {
    expect(ids(listField(await direct[backend].call('ListPodSandbox', {}), 'items')).sort()).toEqual(expectedOn(backend, 'podId').sort());
    expect(ids(listField(await direct[backend].call('ListContainers', {}), 'containers')).sort()).toEqual(
      expectedOn(backend, 'containerId').sort(),
    );
    const image = await direct[backend].call('ImageStatus', { image: { image: env.busyboxImage } });
    expect(stringField(image, 'image.id')).toMatch(/^sha256:/);
    // The OCI runtime that ran each: runc on one containerd, crun on the other, nothing the other way round.
    const own = await runtimeContainers(backend, instances[backend].runtimeRoot(backend));
    expect(own.sort()).toEqual([...expectedOn(backend, 'podId'), ...expectedOn(backend, 'containerId')].sort());
    const foreign: Backend = backend === 'runc' ? 'crun' : 'runc';
    expect(await runtimeContainers(foreign, instances[backend].runtimeRoot(foreign))).toEqual([]);
  }
  // kubelet's "crun-fast" reached the crun containerd as its default handler: it knows no "crun-fast".
  const byClass = pods[1] as Pod;
  const status = await direct.crun.call('PodSandboxStatus', { pod_sandbox_id: byClass.podId });
  expect(stringField(status, 'status.runtime_handler')).toBe('');
  expect(stringField(status, 'status.network.ip')).toMatch(/^10\.88\.78\.\d+$/);
});

test('exec and logs work on both runtimes through the proxy', async () => {
  for (const pod of pods) {
    const exec = await via.call('ExecSync', { container_id: pod.containerId, cmd: ['sh', '-c', `echo on ${pod.backend}`], timeout: 10 });
    expect([numberField(exec, 'exit_code'), bufferField(exec, 'stdout').toString()]).toEqual([0, `on ${pod.backend}\n`]);
    const url = stringField(
      await via.call('Exec', { container_id: pod.containerId, cmd: ['sh', '-c', 'echo streamed'], stdout: true, stderr: true }),
      'url',
    );
    const streamed = await execOverWebSocket(url);
    expect([streamed.stdout, streamed.status]).toEqual(['streamed\n', expect.stringContaining('Success')]);
    const logFile = join(env.podLogDir, pod.name, 'main.log');
    await waitUntil(
      `${pod.name}'s log`,
      () => Promise.resolve(existsSync(logFile) && readFileSync(logFile, 'utf8').includes(`hello from ${pod.name}`)),
      {
        timeoutMs: 20_000,
      },
    );
    await via.call('ReopenContainerLog', { container_id: pod.containerId });
    const stats = await via.call('ContainerStats', { container_id: pod.containerId });
    expect(stringField(stats, 'stats.attributes.id')).toBe(pod.containerId);
  }
});

test('merged lists are the union of what each runtime lists on its own socket', async () => {
  for (const [method, field] of [
    ['ListPodSandbox', 'items'],
    ['ListContainers', 'containers'],
  ] as const) {
    // Each containerd lists in no fixed order of its own, so both sides are compared sorted by ID.
    const merged = byId(listField(await via.call(method, {}), field));
    const own = byId([...listField(await direct.runc.call(method, {}), field), ...listField(await direct.crun.call(method, {}), field)]);
    expect(merged).toEqual(own);
  }
  const filtered = await via.call('ListContainers', { filter: { pod_sandbox_id: pods[2]?.podId } });
  expect(ids(listField(filtered, 'containers'))).toEqual([pods[2]?.containerId]);
  const images = ids(listField(await via.call('ListImages', {}), 'images'));
  const ownImages = [
    ...ids(listField(await direct.runc.call('ListImages', {}), 'images')),
    ...ids(listField(await direct.crun.call('ListImages', {}), 'images')),
  ];
  expect(images.sort()).toEqual([...new Set(ownImages)].sort());
  const statIds = async (client: CriClient): Promise<string[]> =>
    listField(await client.call('ListContainerStats', {}), 'stats').map((s) => stringField(s, 'attributes.id'));
  expect((await statIds(via)).sort()).toEqual([...(await statIds(direct.runc)), ...(await statIds(direct.crun))].sort());
  const mounts = async (client: CriClient): Promise<string[]> =>
    listField(await client.call('ImageFsInfo', {}), 'image_filesystems').map((f) => stringField(f, 'fs_id.mountpoint'));
  expect(await mounts(via)).toEqual([...(await mounts(direct.runc)), ...(await mounts(direct.crun))]);

  expect(await via.call('Version', {})).toEqual(await direct.runc.call('Version', {}));
  const conditions = listField(await via.call('Status', {}), 'status.conditions').map((c) => [stringField(c, 'type'), c['status']]);
  expect(conditions).toEqual(
    expect.arrayContaining([
      ['RuntimeReady', true],
      ['NetworkReady', true],
    ]),
  );
});

test('a proxy restart keeps every route: the new process rebuilds them from both runtimes’ lists', async () => {
  via.close();
  proxy = await restartProxy(env, proxy);
  via = createCriClient(proxy.socketPath);
  for (const pod of pods) {
    expect(stringField(await via.call('PodSandboxStatus', { pod_sandbox_id: pod.podId }), 'status.state')).toBe('SANDBOX_READY');
    expect(stringField(await via.call('ContainerStatus', { container_id: pod.containerId }), 'status.state')).toBe('CONTAINER_RUNNING');
    const exec = await via.call('ExecSync', { container_id: pod.containerId, cmd: ['echo', pod.name], timeout: 10 });
    expect(bufferField(exec, 'stdout').toString()).toBe(`${pod.name}\n`);
  }
  const metrics = await (await fetch(metricsUrl)).text();
  for (const backend of ['runc', 'crun']) {
    expect(metrics).toContain(`cri_proxy_routing_ownership_rebuilds_total{backend="${backend}",result="ok"} 1`);
  }
  // No runtime had to be asked who owns what: the rebuild knew every pod and container.
  expect(metrics.split('\n').filter((l) => l.startsWith('cri_proxy_routing_ownership_resolutions_total{'))).toEqual([]);
});

test('a runtime killed fails merged lists with UNAVAILABLE naming it; the other’s pods work; all recovers when it returns', async () => {
  await instances.crun.stop({ kill: true });
  for (const method of ['ListPodSandbox', 'ListContainers', 'ListImages']) {
    const failed = await failure(via.call(method, {}));
    expect(failed.code).toBe(14);
    expect(failed.details).toMatch(
      new RegExp(
        `^cri-proxy: ${method} needs every backend; backend "crun" failed: UNAVAILABLE: runtime "crun" at unix://${instances.crun.socket}`,
      ),
    );
  }
  const onRunc = pods[0] as Pod;
  const exec = await via.call('ExecSync', { container_id: onRunc.containerId, cmd: ['echo', 'still here'], timeout: 10 });
  expect(bufferField(exec, 'stdout').toString()).toBe('still here\n');

  await instances.crun.start();
  const merged = ids(listField(await via.call('ListPodSandbox', {}), 'items'));
  expect(merged.sort()).toEqual(pods.map((p) => p.podId).sort());
  const onCrun = pods[2] as Pod;
  const back = await via.call('ExecSync', { container_id: onCrun.containerId, cmd: ['echo', 'back'], timeout: 10 });
  expect(bufferField(back, 'stdout').toString()).toBe('back\n');
});

test('removing every pod through the proxy empties both runtimes', async () => {
  for (const pod of pods) {
    await via.call('StopContainer', { container_id: pod.containerId, timeout: 2 });
    await via.call('RemoveContainer', { container_id: pod.containerId });
    await via.call('StopPodSandbox', { pod_sandbox_id: pod.podId });
    await via.call('RemovePodSandbox', { pod_sandbox_id: pod.podId });
  }
  for (const backend of ['runc', 'crun'] as const) {
    expect(listField(await direct[backend].call('ListPodSandbox', {}), 'items')).toEqual([]);
    expect(listField(await direct[backend].call('ListContainers', {}), 'containers')).toEqual([]);
  }
  expect(listField(await via.call('ListPodSandbox', {}), 'items')).toEqual([]);
});
