/**
 * Tears a private containerd down completely, whatever state it was left in: pods removed through CRI when it
 * still answers, then shims and container processes killed, mounts under the work dir detached, cgroups,
 * shim sockets, CNI cache entries and the bridge removed. Every step tolerates what an earlier step or a
 * partial start-up left behind, so it is safe to run twice.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ContainerdLayout } from './containerd';
import { createCriClient, listField, stringField, type CriClient } from './cri-client';
import { isAlive, killSync, listProcesses, run, socketAccepts, waitForExit, withDescendants, type ManagedProcess } from './processes';

const TASK_DIR = 'io.containerd.runtime.v2.task';

interface ShimTask {
  readonly namespace: string;
  readonly id: string;
  /** `unix:///run/containerd/s/<hash>`: shim sockets cannot be moved in containerd 1.6. */
  readonly shimAddress: string | undefined;
  readonly cgroupsPath: string | undefined;
}

/** The task bundles containerd left in its state dir (one per sandbox or container still known to a shim). */
function shimTasks(layout: ContainerdLayout): ShimTask[] {
  const base = join(layout.state, TASK_DIR);
  const tasks: ShimTask[] = [];
  for (const namespace of safeReaddir(base)) {
    for (const id of safeReaddir(join(base, namespace))) {
      const bundle = join(base, namespace, id);
      tasks.push({
        namespace,
        id,
        shimAddress: safeRead(join(bundle, 'address'))?.trim(),
        cgroupsPath: cgroupsPathOf(safeRead(join(bundle, 'config.json'))),
      });
    }
  }
  return tasks;
}

function cgroupsPathOf(specJson: string | undefined): string | undefined {
  if (specJson === undefined) return undefined;
  try {
    const spec = JSON.parse(specJson) as { linux?: { cgroupsPath?: unknown } };
    const path = spec.linux?.cgroupsPath;
    return typeof path === 'string' && path.startsWith('/') ? path : undefined;
  } catch {
    return undefined;
  }
}

/** Shims serving our containerd (found by their `-address` argument), plus everything running under them. */
export function ownedShimTrees(socket: string): number[] {
  const processes = listProcesses();
  const shims = processes.filter((p) => {
    const i = p.args.indexOf('-address');
    return p.args[0]?.includes('containerd-shim') === true && i >= 0 && p.args[i + 1] === socket;
  });
  return withDescendants(
    shims.map((s) => s.pid),
    processes,
  );
}

/** Stops and removes every pod through CRI, which also runs CNI DEL; best effort, bounded in time. */
async function removePodsViaCri(socket: string): Promise<void> {
  if (!existsSync(socket) || !(await socketAccepts(socket))) return;
  let client: CriClient;
  try {
    client = createCriClient(socket);
  } catch {
    return; // No proto available: the forceful path below still cleans up.
  }
  try {
    const list = await client.call('ListPodSandbox', {}, { timeoutMs: 5000 });
    for (const pod of listField(list, 'items')) {
      const id = stringField(pod, 'id');
      await client.call('StopPodSandbox', { pod_sandbox_id: id }, { timeoutMs: 15_000 });
      await client.call('RemovePodSandbox', { pod_sandbox_id: id }, { timeoutMs: 15_000 });
    }
  } catch {
    // Whatever is left is killed below.
  } finally {
    client.close();
  }
}

/** Mount points under `dir`, read from mountinfo (octal escapes decoded). */
export function mountsUnder(dir: string): string[] {
  const text = safeRead('/proc/self/mountinfo') ?? '';
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  return text
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((p): p is string => p !== undefined)
    .map((p) => p.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8))))
    .filter((p) => p.startsWith(prefix) || p === dir);
}

/** Lazily unmounts everything under `dir`, deepest first; repeats for stacked mounts. */
export async function unmountAllUnder(dir: string): Promise<void> {
  for (let pass = 0; pass < 5; pass++) {
    const mounts = mountsUnder(dir);
    if (mounts.length === 0) return;
    mounts.sort((a, b) => b.split('/').length - a.split('/').length || b.length - a.length);
    for (const mount of mounts) {
      await run('umount', ['-l', mount]).catch(() => undefined);
    }
  }
  const left = mountsUnder(dir);
  if (left.length > 0) throw new Error(`mounts left under ${dir}: ${left.join(', ')}`);
}

export async function teardownContainerd(layout: ContainerdLayout, proc: ManagedProcess | undefined): Promise<void> {
  const errors: string[] = [];
  const step = async (what: string, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      errors.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };

  if (proc !== undefined && proc.exitInfo === undefined) await removePodsViaCri(layout.socket);
  // Read before anything is removed: the bundles name the shim sockets and cgroups to clean up.
  const tasks = shimTasks(layout);
  await step('stop containerd', async () => {
    if (proc !== undefined) await proc.stop(5000);
  });
  await step('kill shims', async () => {
    const pids = ownedShimTrees(layout.socket);
    if (pids.length === 0) return;
    killSync(pids); // children first: container processes, then their shim
    await waitForExit(pids, 10_000);
  });
  // Its own dir only: another instance of the run may still have pods running.
  await step('unmount', () => unmountAllUnder(layout.dir));
  await step('cgroups', async () => {
    for (const task of tasks) {
      if (task.cgroupsPath !== undefined) await removeCgroup(task.cgroupsPath);
    }
  });
  await step('shim sockets', async () => {
    for (const task of tasks) {
      const path = task.shimAddress?.replace(/^unix:\/\//, '');
      if (path?.startsWith('/run/containerd/s/')) await rm(path, { force: true });
    }
  });
  // An empty bridge name (an earlier run that never wrote its CNI config) must not match everything.
  const bridge = layout.bridge;
  await step('cni cache', async () => {
    // libcni keeps results at /var/lib/cni/results/<network>-<sandbox>-<ifname>; CNI DEL never ran for pods
    // that were killed, so their entries (ours and containerd's loopback network's) are removed here.
    const dir = '/var/lib/cni/results';
    const ours = new Set(tasks.map((t) => `cni-loopback-${t.id}-lo`));
    for (const name of safeReaddir(dir)) {
      if (ours.has(name) || (bridge !== '' && name.startsWith(`${bridge}-`))) await rm(join(dir, name), { force: true });
    }
  });
  await step('bridge', async () => {
    if (bridge !== '' && existsSync(`/sys/class/net/${bridge}`)) await run('ip', ['link', 'delete', bridge]);
  });
  await step('leftover processes', () => {
    const pids = ownedShimTrees(layout.socket);
    if (proc !== undefined && isAlive(proc.pid)) pids.push(proc.pid);
    if (pids.length > 0) throw new Error(`still running: ${pids.join(', ')}`);
    return Promise.resolve();
  });
  if (errors.length > 0) throw new Error(`containerd teardown incomplete:\n${errors.join('\n')}`);
}

/** Removes a container's (empty) cgroup in every v1 hierarchy, or the v2 one. */
async function removeCgroup(cgroupsPath: string): Promise<void> {
  const base = '/sys/fs/cgroup';
  const hierarchies = existsSync(join(base, 'cgroup.controllers')) ? [base] : safeReaddir(base).map((h) => join(base, h));
  for (const hierarchy of hierarchies) {
    await rmdir(join(hierarchy, cgroupsPath)).catch(() => undefined);
  }
}

/** Synchronous last resort for process exit: kills our containerd's shims and everything under them. */
export function killOwnedSync(socket: string, pids: readonly number[]): void {
  killSync([...pids, ...ownedShimTrees(socket)]);
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function safeRead(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}
