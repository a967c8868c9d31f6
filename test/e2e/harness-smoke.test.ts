/** The harness itself, against a real containerd: a pod's whole life through CRI, then a clean teardown. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runtimeContainers } from './harness/containerd';
import { bufferField, createCriClient, listField, numberField, stringField, type CriClient } from './harness/cri-client';
import { startEnvironment, type E2eEnvironment } from './harness/environment';
import { isAlive, waitUntil } from './harness/processes';
import { mountsUnder } from './harness/teardown';

jest.setTimeout(120_000);

function sandboxConfig(env: E2eEnvironment, name: string): Record<string, unknown> {
  return {
    metadata: { name, namespace: 'e2e', uid: `${name}-uid`, attempt: 0 },
    log_directory: join(env.podLogDir, name),
    linux: {},
  };
}

/** Runs a pod with one busybox container running `command`; returns the ids. */
async function runPod(
  cri: CriClient,
  env: E2eEnvironment,
  name: string,
  command: string[],
): Promise<{ podId: string; containerId: string }> {
  const config = sandboxConfig(env, name);
  const podId = stringField(await cri.call('RunPodSandbox', { config }), 'pod_sandbox_id');
  const created = await cri.call('CreateContainer', {
    pod_sandbox_id: podId,
    sandbox_config: config,
    config: { metadata: { name: 'main', attempt: 0 }, image: { image: env.busyboxImage }, command, log_path: 'main.log', linux: {} },
  });
  const containerId = stringField(created, 'container_id');
  await cri.call('StartContainer', { container_id: containerId });
  return { podId, containerId };
}

describe('e2e harness (real containerd)', () => {
  let env: E2eEnvironment | undefined;
  let cri: CriClient | undefined;

  afterEach(async () => {
    cri?.close();
    cri = undefined;
    await env?.stop();
    env = undefined;
  });

  it('runs a pod through CRI and tears everything down', async () => {
    env = await startEnvironment();
    cri = createCriClient(env.containerdSocket);

    const version = await cri.call('Version', { version: 'v1' });
    expect(stringField(version, 'runtime_name')).toBe('containerd');
    expect(stringField(version, 'runtime_api_version')).toBe('v1');

    const pulled = await cri.call('PullImage', { image: { image: env.busyboxImage } });
    expect(stringField(pulled, 'image_ref')).toMatch(/^sha256:[0-9a-f]{64}$/);

    const { podId, containerId } = await runPod(cri, env, 'smoke', ['sh', '-c', 'echo hello; sleep 3600']);
    const podStatus = await cri.call('PodSandboxStatus', { pod_sandbox_id: podId });
    expect(stringField(podStatus, 'status.state')).toBe('SANDBOX_READY');
    expect(stringField(podStatus, 'status.network.ip')).toMatch(/^10\.88\.77\.\d+$/);

    // CRI log format: "<time> stdout F hello".
    const logFile = join(env.podLogDir, 'smoke', 'main.log');
    const logged = (): Promise<boolean> => Promise.resolve(existsSync(logFile) && / stdout F hello$/m.test(readFileSync(logFile, 'utf8')));
    await waitUntil('container log', logged, { timeoutMs: 10_000 });

    const exec = await cri.call('ExecSync', { container_id: containerId, cmd: ['echo', 'hi'], timeout: 10 });
    expect(numberField(exec, 'exit_code')).toBe(0);
    expect(bufferField(exec, 'stdout').toString()).toBe('hi\n');

    // The pod's processes (pause, sleep) run under our shims while it lives.
    const running = env.ownedProcesses();
    expect(running.some((p) => p.args[0] === '/pause')).toBe(true);
    expect(running.some((p) => p.args.join(' ') === 'sleep 3600')).toBe(true);

    await cri.call('StopContainer', { container_id: containerId, timeout: 5 });
    const stopped = await cri.call('ContainerStatus', { container_id: containerId });
    expect(stringField(stopped, 'status.state')).toBe('CONTAINER_EXITED');
    await cri.call('RemoveContainer', { container_id: containerId });
    await cri.call('StopPodSandbox', { pod_sandbox_id: podId });
    await cri.call('RemovePodSandbox', { pod_sandbox_id: podId });
    expect(listField(await cri.call('ListPodSandbox', {}), 'items')).toEqual([]);

    const { workDir, bridge } = env;
    await env.stop();

    expect(env.ownedProcesses()).toEqual([]);
    expect(running.filter((p) => isAlive(p.pid))).toEqual([]);
    expect(existsSync(`/sys/class/net/${bridge}`)).toBe(false);
    expect(existsSync(workDir)).toBe(process.env['CRI_PROXY_E2E_KEEP'] === '1');
  });

  it('survives a containerd restart and cleans up after containerd is killed with pods running', async () => {
    env = await startEnvironment();
    cri = createCriClient(env.containerdSocket);
    await cri.call('PullImage', { image: { image: env.busyboxImage } });
    const { podId } = await runPod(cri, env, 'left', ['sleep', '3600']);

    await env.restartContainerd();
    const pods = listField(await cri.call('ListPodSandbox', {}), 'items');
    expect(pods.map((p) => [stringField(p, 'id'), stringField(p, 'state')])).toEqual([[podId, 'SANDBOX_READY']]);

    const running = env.ownedProcesses();
    expect(running.some((p) => p.args.join(' ') === 'sleep 3600')).toBe(true);
    process.kill(env.containerdPid, 'SIGKILL');
    const { workDir, bridge } = env;
    await env.stop();

    expect(env.ownedProcesses()).toEqual([]);
    expect(running.filter((p) => isAlive(p.pid))).toEqual([]);
    expect(mountsUnder(workDir)).toEqual([]);
    expect(existsSync(`/sys/class/net/${bridge}`)).toBe(false);
  });

  it('runs two containerds side by side, one with runc and one with crun, each pod on its own runtime', async () => {
    env = await startEnvironment({
      containerds: [
        { name: 'containerd', runtime: 'runc' },
        { name: 'containerd-crun', runtime: 'crun' },
      ],
    });
    const [runcd, crund] = env.containerds;
    if (runcd === undefined || crund === undefined) throw new Error('two containerds expected');
    expect([runcd.runtime, crund.runtime]).toEqual(['runc', 'crun']);
    expect(new Set([runcd.socket, crund.socket, runcd.bridge, crund.bridge, runcd.subnet, crund.subnet]).size).toBe(6);
    expect(runcd.socket).toBe(env.containerdSocket);
    expect(env.containerd('containerd-crun')).toBe(crund);
    expect(runcd.pid).not.toBe(crund.pid);

    const clients = [runcd, crund].map((c) => createCriClient(c.socket));
    try {
      const pods = await Promise.all(
        clients.map(async (client, i) => {
          await client.call('PullImage', { image: { image: env?.busyboxImage } });
          if (env === undefined) throw new Error('no environment');
          return runPod(client, env, `pod-${i}`, ['sleep', '3600']);
        }),
      );
      for (const [i, client] of clients.entries()) {
        const status = await client.call('PodSandboxStatus', { pod_sandbox_id: pods[i]?.podId });
        expect(stringField(status, 'status.network.ip')).toMatch(i === 0 ? /^10\.88\.77\.\d+$/ : /^10\.88\.78\.\d+$/);
        const exec = await client.call('ExecSync', { container_id: pods[i]?.containerId, cmd: ['echo', `on ${i}`], timeout: 10 });
        expect(bufferField(exec, 'stdout').toString()).toBe(`on ${i}\n`);
        // Each containerd knows only its own pod.
        expect(listField(await client.call('ListPodSandbox', {}), 'items').map((p) => stringField(p, 'id'))).toEqual([pods[i]?.podId]);
      }

      // The runtimes' own state: runc ran the first pod's sandbox and container, crun the second's.
      const [first, second] = pods as [{ podId: string; containerId: string }, { podId: string; containerId: string }];
      const runcIds = await runtimeContainers('runc', runcd.runtimeRoot('runc'));
      const crunIds = await runtimeContainers('crun', crund.runtimeRoot('crun'));
      expect(runcIds.sort()).toEqual([first.podId, first.containerId].sort());
      expect(crunIds.sort()).toEqual([second.podId, second.containerId].sort());
      // And neither runtime ran anything on the other containerd.
      expect(await runtimeContainers('crun', runcd.runtimeRoot('crun'))).toEqual([]);
      expect(await runtimeContainers('runc', crund.runtimeRoot('runc'))).toEqual([]);
    } finally {
      for (const client of clients) client.close();
    }

    const { workDir } = env;
    const bridges = [runcd.bridge, crund.bridge];
    await env.stop();
    expect(env.ownedProcesses()).toEqual([]);
    expect(mountsUnder(workDir)).toEqual([]);
    expect(bridges.filter((b) => existsSync(`/sys/class/net/${b}`))).toEqual([]);
  });
});
