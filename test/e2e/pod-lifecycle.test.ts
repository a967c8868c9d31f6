/** Real pods through cri-proxy in front of a real containerd: every step of a pod's life, and errors. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { bufferField, createCriClient, listField, numberField, stringField, type CriClient, type CriMessage } from './harness/cri-client';
import { startEnvironment, type E2eEnvironment } from './harness/environment';
import { execOverWebSocket } from './harness/exec-websocket';
import { failureOrigin, KubeletCalls, type FailureOrigin } from './harness/kubelet-calls';
import { waitUntil } from './harness/processes';
import { startProxy, type RunningProxy } from './harness/proxy';

jest.setTimeout(180_000);

let env: E2eEnvironment;
let proxy: RunningProxy;
let via: CriClient;
let direct: CriClient;

beforeAll(async () => {
  env = await startEnvironment();
  proxy = await startProxy(env);
  via = createCriClient(proxy.socketPath);
  direct = createCriClient(env.containerdSocket);
});

afterAll(async () => {
  via?.close();
  direct?.close();
  await env?.stop();
});

function sandboxConfig(name: string, labels: Record<string, string> = {}, attempt = 0): Record<string, unknown> {
  return {
    metadata: { name, namespace: 'e2e', uid: `${name}-uid`, attempt },
    log_directory: join(env.podLogDir, name),
    labels,
    linux: {},
  };
}

function containerConfig(name: string, command: string[], labels: Record<string, string> = {}, attempt = 0): Record<string, unknown> {
  return { metadata: { name, attempt }, image: { image: env.busyboxImage }, command, labels, log_path: `${name}.log`, linux: {} };
}

function rssKiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0);
}

interface GrpcFailure {
  code: number;
  details: string;
  /** Who produced the status, as the client can tell (harness/kubelet-calls.ts). */
  origin: FailureOrigin;
}

async function failure(call: Promise<CriMessage>): Promise<GrpcFailure> {
  try {
    await call;
  } catch (err) {
    const { code, details } = err as GrpcFailure;
    // Ids the runtime generates per call differ between the two calls.
    return { code, details: details.replace(/[0-9a-f]{64}/g, '<id>'), origin: failureOrigin(err) };
  }
  throw new Error('the call was expected to fail');
}

describe('a pod through cri-proxy', () => {
  let podId = '';
  let containerId = '';

  test('Version and Status answer as containerd does', async () => {
    const version = await via.call('Version', { version: 'v1' });
    expect(version).toEqual(await direct.call('Version', { version: 'v1' }));
    expect(stringField(version, 'runtime_name')).toBe('containerd');
    const status = await via.call('Status', {});
    const conditions = listField(status, 'status.conditions').map((c) => [stringField(c, 'type'), c['status']]);
    expect(conditions).toEqual(
      expect.arrayContaining([
        ['RuntimeReady', true],
        ['NetworkReady', true],
      ]),
    );
  });

  test('PullImage from the local registry, then ImageStatus and ImageFsInfo', async () => {
    const pulled = await via.call('PullImage', { image: { image: env.busyboxImage } });
    expect(stringField(pulled, 'image_ref')).toMatch(/^sha256:[0-9a-f]{64}$/);
    const status = await via.call('ImageStatus', { image: { image: env.busyboxImage } });
    expect(stringField(status, 'image.id')).toBe(stringField(pulled, 'image_ref'));
    const fs = await via.call('ImageFsInfo', {});
    expect(listField(fs, 'image_filesystems').length).toBeGreaterThan(0);
  });

  test('RunPodSandbox gives the pod an IP on the bridge', async () => {
    podId = stringField(await via.call('RunPodSandbox', { config: sandboxConfig('life', { app: 'life' }) }), 'pod_sandbox_id');
    const status = await via.call('PodSandboxStatus', { pod_sandbox_id: podId });
    expect(stringField(status, 'status.state')).toBe('SANDBOX_READY');
    expect(stringField(status, 'status.network.ip')).toMatch(/^10\.88\.77\.\d+$/);
  });

  test('CreateContainer and StartContainer run it, and its log file holds its output', async () => {
    const created = await via.call('CreateContainer', {
      pod_sandbox_id: podId,
      sandbox_config: sandboxConfig('life', { app: 'life' }),
      config: containerConfig('main', ['sh', '-c', 'echo hello from the pod; sleep 3600'], { tier: 'main' }),
    });
    containerId = stringField(created, 'container_id');
    await via.call('StartContainer', { container_id: containerId });
    const logFile = join(env.podLogDir, 'life', 'main.log');
    await waitUntil(
      'container log',
      () => Promise.resolve(existsSync(logFile) && readFileSync(logFile, 'utf8').includes('hello from the pod')),
      {
        timeoutMs: 10_000,
      },
    );
  });

  test('ExecSync returns stdout and the exit code', async () => {
    const ok = await via.call('ExecSync', { container_id: containerId, cmd: ['echo', 'hi'], timeout: 10 });
    expect(numberField(ok, 'exit_code')).toBe(0);
    expect(bufferField(ok, 'stdout').toString()).toBe('hi\n');
    const failed = await via.call('ExecSync', { container_id: containerId, cmd: ['sh', '-c', 'echo oops >&2; exit 3'], timeout: 10 });
    expect(numberField(failed, 'exit_code')).toBe(3);
    expect(bufferField(failed, 'stderr').toString()).toBe('oops\n');
  });

  test('Exec returns a streaming URL that runs the command', async () => {
    const exec = await via.call('Exec', { container_id: containerId, cmd: ['sh', '-c', 'echo streamed'], stdout: true, stderr: true });
    const output = await execOverWebSocket(stringField(exec, 'url'));
    expect(output.stdout).toBe('streamed\n');
    expect(output.status).toContain('Success');
  });

  test('ContainerStatus, filtered lists and stats', async () => {
    const status = await via.call('ContainerStatus', { container_id: containerId });
    expect(stringField(status, 'status.state')).toBe('CONTAINER_RUNNING');
    expect(stringField(status, 'status.image.image')).toBe(env.busyboxImage);

    const byPod = await via.call('ListContainers', { filter: { pod_sandbox_id: podId } });
    expect(listField(byPod, 'containers').map((c) => c['id'])).toEqual([containerId]);
    const byLabel = await via.call('ListContainers', { filter: { label_selector: { tier: 'nope' } } });
    expect(listField(byLabel, 'containers')).toEqual([]);
    const pods = await via.call('ListPodSandbox', { filter: { label_selector: { app: 'life' } } });
    expect(listField(pods, 'items').map((p) => p['id'])).toEqual([podId]);
    const running = await via.call('ListPodSandbox', { filter: { state: { state: 'SANDBOX_NOTREADY' } } });
    expect(listField(running, 'items')).toEqual([]);

    const stats = await via.call('ContainerStats', { container_id: containerId });
    expect(stringField(stats, 'stats.attributes.id')).toBe(containerId);
  });

  test('StopContainer, RemoveContainer, StopPodSandbox, RemovePodSandbox, each idempotent', async () => {
    await via.call('StopContainer', { container_id: containerId, timeout: 2 });
    expect(stringField(await via.call('ContainerStatus', { container_id: containerId }), 'status.state')).toBe('CONTAINER_EXITED');
    await via.call('RemoveContainer', { container_id: containerId });
    await via.call('RemoveContainer', { container_id: containerId });
    await via.call('StopPodSandbox', { pod_sandbox_id: podId });
    await via.call('StopPodSandbox', { pod_sandbox_id: podId });
    await via.call('RemovePodSandbox', { pod_sandbox_id: podId });
    await via.call('RemovePodSandbox', { pod_sandbox_id: podId });
    expect(listField(await via.call('ListPodSandbox', {}), 'items')).toEqual([]);
  });

  test("GetContainerEvents streams a container's lifecycle through the proxy, or is refused exactly as containerd refuses it", async () => {
    // Does containerd serve events at all? A refusal comes at once; a stream that is served ends at its deadline.
    const directOutcome = await failure(
      (async () => {
        for await (const e of direct.stream('GetContainerEvents', {}, { timeoutMs: 5000 })) return e;
        return {};
      })(),
    );
    const DEADLINE_EXCEEDED = 4;
    if (directOutcome.code !== DEADLINE_EXCEEDED) {
      // containerd 1.6 predates container events: the proxy must relay its refusal unchanged.
      expect(
        await failure(
          (async () => {
            for await (const e of via.stream('GetContainerEvents', {})) return e;
            return {};
          })(),
        ),
      ).toEqual(directOutcome);
      return;
    }
    const abort = new AbortController();
    const events: CriMessage[] = [];
    const consumed = (async () => {
      for await (const event of via.stream('GetContainerEvents', {}, { signal: abort.signal, timeoutMs: 600_000 })) events.push(event);
    })().catch(() => undefined);
    try {
      // The stream may open after a first container's events: a later container's whole lifecycle is then seen.
      const seen = (id: string): string[] => events.filter((e) => e['container_id'] === id).map((e) => String(e['container_event_type']));
      let complete = false;
      for (let attempt = 0; attempt < 3 && !complete; attempt++) {
        const config = sandboxConfig(`events-${attempt}`);
        const pod = stringField(await via.call('RunPodSandbox', { config }), 'pod_sandbox_id');
        const created = await via.call('CreateContainer', {
          pod_sandbox_id: pod,
          sandbox_config: config,
          config: containerConfig('c', ['true']),
        });
        const id = stringField(created, 'container_id');
        await via.call('StartContainer', { container_id: id });
        await via.call('StopContainer', { container_id: id, timeout: 1 });
        const lifecycle = ['CONTAINER_CREATED_EVENT', 'CONTAINER_STARTED_EVENT', 'CONTAINER_STOPPED_EVENT'];
        // Missed entirely (the stream was not open yet): the next attempt will tell.
        await waitUntil("the container's events", () => Promise.resolve(seen(id).includes('CONTAINER_STOPPED_EVENT')), {
          timeoutMs: 20_000,
        }).catch(() => undefined);
        complete = lifecycle.every((type) => seen(id).includes(type));
        await via.call('RemoveContainer', { container_id: id });
        await via.call('StopPodSandbox', { pod_sandbox_id: pod });
        await via.call('RemovePodSandbox', { pod_sandbox_id: pod });
      }
      expect(complete).toBe(true);
    } finally {
      abort.abort();
      await consumed;
    }
  });

  test('RemoveImage removes it', async () => {
    await via.call('RemoveImage', { image: { image: env.busyboxImage } });
    const status = await via.call('ImageStatus', { image: { image: env.busyboxImage } });
    expect(status['image']).toBeFalsy();
  });

  test.each([
    ['a missing image', 'PullImage', () => ({ image: { image: `${env.registryHost}/library/missing:1.0` } })],
    ['an unknown container id', 'ContainerStatus', () => ({ container_id: 'no-such-container' })],
    ['a bad runtime handler', 'RunPodSandbox', () => ({ config: sandboxConfig('bad-handler'), runtime_handler: 'no-such-handler' })],
  ])('%s fails with the same code and message as calling containerd directly', async (_label, method, request) => {
    const throughProxy = await failure(via.call(method, request()));
    const directly = await failure(direct.call(method, request()));
    expect(throughProxy.code).toBeGreaterThan(0);
    // The runtime's status, relayed unchanged: what the churn test below retries as kubelet would.
    expect(throughProxy).toEqual({ ...directly, origin: 'runtime' });
  });

  test('a call that got no status at all is told from a status the runtime sent', async () => {
    const nowhere = createCriClient(env.socketPath('no-such-proxy'));
    try {
      // The client library's own status, for a socket nothing listens on: what a broken proxy would give.
      expect(await failure(nowhere.call('Version', {}, { timeoutMs: 2000 }))).toMatchObject({ code: 14, origin: 'no-status' });
    } finally {
      nowhere.close();
    }
  });
});

describe('pod churn through cri-proxy', () => {
  test('20 pods created and removed concurrently leave nothing behind, and the proxy memory settles', async () => {
    // On a busy machine the runtime may fail a call of its own accord: retried as kubelet would, and counted.
    const kubelet = new KubeletCalls(via);
    await kubelet.call('PullImage', () => ({ image: { image: env.busyboxImage } }));
    const churn = async (round: number): Promise<void> => {
      await Promise.all(
        Array.from({ length: 20 }, async (_, i) => {
          const name = `churn-${round}-${i}`;
          let config = sandboxConfig(name, { churn: 'yes' });
          const pod = stringField(
            await kubelet.call('RunPodSandbox', (attempt) => ({ config: (config = sandboxConfig(name, { churn: 'yes' }, attempt)) })),
            'pod_sandbox_id',
          );
          const created = await kubelet.call('CreateContainer', (attempt) => ({
            pod_sandbox_id: pod,
            sandbox_config: config,
            config: containerConfig('c', ['sleep', '3600'], {}, attempt),
          }));
          const id = stringField(created, 'container_id');
          await kubelet.call('StartContainer', () => ({ container_id: id }));
          await kubelet.calls([
            ['StopContainer', () => ({ container_id: id, timeout: 1 })],
            ['RemoveContainer', () => ({ container_id: id })],
          ]);
          await kubelet.calls([
            ['StopPodSandbox', () => ({ pod_sandbox_id: pod })],
            ['RemovePodSandbox', () => ({ pod_sandbox_id: pod })],
          ]);
        }),
      );
    };
    await churn(0);
    const settled = rssKiB(proxy.process.pid);
    await churn(1);
    await churn(2);
    // A create the runtime failed may have left a sandbox behind; kubelet's garbage collection removes those.
    const failedCreates = kubelet.retried.filter((r) => r.method === 'RunPodSandbox' || r.method === 'CreateContainer').length;
    const leftovers = listField(await via.call('ListPodSandbox', { filter: { label_selector: { churn: 'yes' } } }), 'items');
    for (const pod of leftovers.slice(0, failedCreates)) {
      const podId = stringField(pod, 'id');
      await kubelet.calls([
        ['StopPodSandbox', () => ({ pod_sandbox_id: podId })],
        ['RemovePodSandbox', () => ({ pod_sandbox_id: podId })],
      ]);
    }
    if (kubelet.retried.length > 0) console.info(`pod churn: the runtime's own errors, retried: ${JSON.stringify(kubelet.retried)}`);
    expect(listField(await via.call('ListPodSandbox', {}), 'items')).toEqual([]);
    expect(listField(await via.call('ListContainers', {}), 'containers')).toEqual([]);
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .filter((l) => l.includes(env.workDir) && /sandboxes|shm|rootfs/.test(l));
    expect(mounts).toEqual([]);
    // Two more rounds of 20 pods must not grow the proxy: memory returns to where it was after the first.
    await waitUntil('proxy memory to settle', () => Promise.resolve(rssKiB(proxy.process.pid) < settled + 16 * 1024), {
      timeoutMs: 20_000,
    });
  });
});
