/**
 * One e2e run's world in a fresh temp dir: locally built images in a private registry, and one or more private
 * containerd instances with CRI and CNI that pull from it. `stop()` removes all of it, also after a partial start.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import {
  containerdLayout,
  detectSnapshotter,
  FIRST_CONTAINERD,
  startContainerd,
  type ContainerdLayout,
  type ContainerdSettings,
  type OciRuntime,
  type Snapshotter,
} from './containerd';
import { buildImages, type BuiltImages } from './images';
import { listProcesses, spawnLogged, waitForUnixSocket, withDescendants, type ManagedProcess, type ProcInfo } from './processes';
import { pushImage, startRegistry, type Registry } from './registry';
import { markOwner, markStopped, processesOf, reclaimAbandonedRuns, WORK_DIR_PREFIX } from './reclaim';
import { killOwnedSync, mountsUnder, teardownContainerd, unmountAllUnder } from './teardown';

export interface EnvironmentOptions {
  /** Parent of the per-run work dir; the OS temp dir unless given. */
  readonly tmpRoot?: string;
  /** Keep the work dir (logs, configs) after stop(); defaults to CRI_PROXY_E2E_KEEP=1 in the environment. */
  readonly keepWorkDir?: boolean;
  /** Skip probing and use this snapshotter. */
  readonly snapshotter?: Snapshotter;
  /**
   * The containerd instances to run, each with its own root, state, socket and CNI bridge and subnet; the first
   * is the environment's `containerdSocket`. One `containerd` running runc unless given.
   */
  readonly containerds?: readonly ContainerdSpec[];
}

export interface ContainerdSpec {
  /** `containerd` for the first; `containerd-<a-z0-9>` for the others. */
  readonly name: string;
  /** The OCI runtime pods run with by default. */
  readonly runtime: OciRuntime;
}

/** One running private containerd of the environment. */
export interface ContainerdInstance {
  readonly name: string;
  readonly runtime: OciRuntime;
  readonly socket: string;
  readonly bridge: string;
  readonly subnet: string;
  /** Where `runtime` keeps the state of CRI's containers here (`<runtime> --root <this> list` shows them). */
  runtimeRoot(runtime: OciRuntime): string;
  /** The current containerd process's pid. */
  readonly pid: number;
  /** Stops this containerd and starts it again on the same state (pods keep running). */
  restart(): Promise<void>;
  /** Stops this containerd (SIGKILL, like a crash, when `kill`); its pods keep running. `start()` brings it back. */
  stop(options?: { readonly kill?: boolean }): Promise<void>;
  /** Starts this containerd again (after `stop`) on the same state and socket. */
  start(): Promise<void>;
}

export interface StartProcessOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Resolve only once this unix socket accepts connections. */
  readonly waitForSocket?: string;
  readonly timeoutMs?: number;
}

export interface E2eEnvironment {
  readonly workDir: string;
  /** One `<name>.log` per process of the run. */
  readonly logDir: string;
  /** A directory for pods' `log_directory`. */
  readonly podLogDir: string;
  readonly containerdSocket: string;
  /** `127.0.0.1:PORT` of the private registry. */
  readonly registryHost: string;
  /** `127.0.0.1:PORT/library/busybox:1.0` */
  readonly busyboxImage: string;
  /** `127.0.0.1:PORT/library/pause:1.0`, containerd's sandbox image. */
  readonly pauseImage: string;
  readonly snapshotter: Snapshotter;
  /** The CNI bridge pods of the first containerd are attached to. */
  readonly bridge: string;
  /** Every containerd of the run, in the order asked for. */
  readonly containerds: readonly ContainerdInstance[];
  /** The instance named `name`; throws when there is none. */
  containerd(name: string): ContainerdInstance;
  /** `<workDir>/<name>.sock`: a place for further sockets (e.g. cri-proxy's). */
  socketPath(name: string): string;
  /** Starts a further process of the run (e.g. cri-proxy); stop() ends it before containerd. */
  startProcess(name: string, command: string, args: readonly string[], options?: StartProcessOptions): Promise<ManagedProcess>;
  /** Stops the first containerd and starts it again on the same state (pods keep running). */
  restartContainerd(): Promise<void>;
  /** The first containerd's current pid. */
  readonly containerdPid: number;
  /** Processes of this run still alive: anything naming the work dir, containerd's shims, and their children. */
  ownedProcesses(): ProcInfo[];
  /** Tears everything down; idempotent. Rejects (after doing all it can) if something could not be cleaned. */
  stop(): Promise<void>;
}

const REQUIRED_COMMANDS = [
  'containerd',
  'ctr',
  'containerd-shim-runc-v2',
  'runc',
  'docker-registry',
  'skopeo',
  'umoci',
  'gcc',
  'ip',
  'mount',
  'umount',
];
const REQUIRED_CNI = ['bridge', 'host-local', 'loopback'].map((p) => `/usr/lib/cni/${p}`);
const DEFAULT_CONTAINERDS: readonly ContainerdSpec[] = [{ name: FIRST_CONTAINERD, runtime: 'runc' }];

function preflight(specs: readonly ContainerdSpec[]): void {
  if (process.getuid?.() !== 0) throw new Error('the e2e environment needs root (containerd, mounts, network namespaces)');
  const [first] = specs;
  if (first?.name !== FIRST_CONTAINERD) throw new Error(`the first containerd must be named "${FIRST_CONTAINERD}"`);
  if (new Set(specs.map((s) => s.name)).size !== specs.length) throw new Error('containerd instance names must be unique');
  const dirs = (process.env['PATH'] ?? '').split(delimiter).filter((d) => d !== '');
  const commands = [...REQUIRED_COMMANDS, ...new Set(specs.map((s) => s.runtime))];
  const missing = [...commands.filter((cmd) => !dirs.some((d) => existsSync(join(d, cmd)))), ...REQUIRED_CNI.filter((p) => !existsSync(p))];
  if (missing.length > 0) {
    throw new Error(`e2e dependencies missing (${missing.join(', ')}): run scripts/install-e2e-deps.sh as root`);
  }
}

interface InstanceState {
  readonly layout: ContainerdLayout;
  readonly settings: ContainerdSettings;
  process?: ManagedProcess;
}

interface RunState {
  readonly workDir: string;
  readonly extra: ManagedProcess[];
  registry?: Registry;
  readonly instances: InstanceState[];
}

const processesOfRun = (state: RunState): ManagedProcess[] =>
  [...state.extra, ...state.instances.map((i) => i.process), state.registry?.process].filter((p): p is ManagedProcess => p !== undefined);

export async function startEnvironment(options: EnvironmentOptions = {}): Promise<E2eEnvironment> {
  const specs = options.containerds ?? DEFAULT_CONTAINERDS;
  preflight(specs);
  const tmpRoot = options.tmpRoot ?? tmpdir();
  const keep = options.keepWorkDir ?? process.env['CRI_PROXY_E2E_KEEP'] === '1';
  await reclaimAbandonedRuns(tmpRoot, !keep);
  const workDir = await mkdtemp(join(tmpRoot, WORK_DIR_PREFIX));
  markOwner(workDir);
  const logDir = join(workDir, 'logs');
  const podLogDir = join(workDir, 'pods');
  await Promise.all([mkdir(logDir), mkdir(podLogDir)]);
  const state: RunState = { workDir, extra: [], instances: [] };

  // Last resort if the test process exits without stop(): no daemon or container may outlive it.
  const onExit = (): void => {
    const pids = processesOfRun(state).map((p) => p.pid);
    for (const instance of state.instances) killOwnedSync(instance.layout.socket, pids);
  };
  process.once('exit', onExit);

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= teardown(state, keep).finally(() => process.removeListener('exit', onExit));
    return stopping;
  };

  try {
    const imagesP = buildImages(workDir);
    const registryP = startRegistry(workDir, logDir).then((r) => (state.registry = r));
    const snapshotterP = options.snapshotter ?? detectSnapshotter(workDir);
    // Wait for all three before failing, so a registry started alongside a failed build is still recorded.
    await Promise.allSettled([imagesP, registryP, snapshotterP]);
    const [images, registry, snapshotter] = [await imagesP, await registryP, await snapshotterP];
    const busyboxImage = `${registry.host}/library/busybox:1.0`;
    const pauseImage = `${registry.host}/library/pause:1.0`;
    await pushImages(images, busyboxImage, pauseImage);

    const instances = specs.map((spec, i): InstanceState => {
      // Subnets differ only so each pod's address tells its runtime; without a gateway on the host they never clash.
      const layout = containerdLayout(workDir, { name: spec.name, subnet: `10.88.${77 + i}.0/24` });
      return { layout, settings: { sandboxImage: pauseImage, registryHost: registry.host, snapshotter, runtime: spec.runtime } };
    });
    state.instances.push(...instances);
    const launch = async (instance: InstanceState): Promise<void> => {
      await startContainerd(instance.layout, instance.settings, logDir, (p) => {
        instance.process = p;
      });
    };
    // At once: each waits mostly for its own start-up. All settle before a failure is reported.
    const launched = await Promise.allSettled(instances.map(launch));
    const failed = launched.find((r) => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason instanceof Error ? failed.reason : new Error(String(failed.reason));

    const views = instances.map((instance): ContainerdInstance => ({
      name: instance.layout.name,
      runtime: instance.settings.runtime,
      socket: instance.layout.socket,
      bridge: instance.layout.bridge,
      subnet: instance.layout.subnet,
      // The shim adds containerd's namespace to the configured root.
      runtimeRoot: (runtime) => join(runtime === 'crun' ? instance.layout.crunRoot : instance.layout.runcRoot, 'k8s.io'),
      get pid() {
        return instance.process?.pid ?? 0;
      },
      async restart() {
        await this.stop();
        await this.start();
      },
      async stop(opts = {}) {
        // SIGTERM (or SIGKILL) leaves the shims, and so the pods, running; the next containerd reconnects to them.
        const proc = instance.process;
        if (proc === undefined || proc.exitInfo !== undefined) return;
        if (opts.kill !== true) {
          await proc.stop(10_000);
          return;
        }
        process.kill(proc.pid, 'SIGKILL');
        await proc.exited;
      },
      start: () => launch(instance),
    }));
    const [first] = views as [ContainerdInstance, ...ContainerdInstance[]];

    return {
      workDir,
      logDir,
      podLogDir,
      containerdSocket: first.socket,
      registryHost: registry.host,
      busyboxImage,
      pauseImage,
      snapshotter,
      bridge: first.bridge,
      containerds: views,
      containerd(name) {
        const found = views.find((v) => v.name === name);
        if (found === undefined) throw new Error(`no containerd named "${name}" in this environment`);
        return found;
      },
      socketPath: (name) => join(workDir, `${name}.sock`),
      async startProcess(name, command, args, opts = {}) {
        const proc = await spawnLogged(name, command, args, {
          logDir,
          ...(opts.env !== undefined ? { env: opts.env } : {}),
          ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
        });
        state.extra.push(proc);
        if (opts.waitForSocket !== undefined) {
          await waitForUnixSocket(opts.waitForSocket, { timeoutMs: opts.timeoutMs ?? 20_000, process: proc });
        }
        return proc;
      },
      restartContainerd: () => first.restart(),
      get containerdPid() {
        return first.pid;
      },
      ownedProcesses: () => ownedProcesses(state),
      stop,
    };
  } catch (err) {
    await stop().catch((cleanupErr: unknown) => {
      if (err instanceof Error) err.message += `\n(teardown after failed start: ${String(cleanupErr)})`;
    });
    throw err;
  }
}

async function pushImages(images: BuiltImages, busyboxImage: string, pauseImage: string): Promise<void> {
  await Promise.all([
    pushImage(images.layoutDir, images.busyboxTag, busyboxImage),
    pushImage(images.layoutDir, images.pauseTag, pauseImage),
  ]);
}

function ownedProcesses(state: RunState): ProcInfo[] {
  const processes = listProcesses();
  const tracked = processesOfRun(state).map((p) => p.pid);
  // Shims name our socket (inside the work dir), so they and their containers are found through it too.
  const pids = new Set([...processesOf(state.workDir), ...withDescendants(tracked, processes)]);
  return processes.filter((p) => pids.has(p.pid) && p.pid !== process.pid);
}

async function teardown(state: RunState, keep: boolean): Promise<void> {
  const errors: string[] = [];
  const attempt = async (what: string, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      errors.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  for (const proc of [...state.extra].reverse()) {
    await attempt(`stop ${proc.name}`, async () => {
      await proc.stop(5000);
    });
  }
  for (const instance of state.instances) {
    await attempt(instance.layout.name, () => teardownContainerd(instance.layout, instance.process));
  }
  // Anything else mounted in the run's dir (each instance detached its own).
  await attempt('unmount', () => unmountAllUnder(state.workDir));
  const registry = state.registry;
  if (registry !== undefined) await attempt('registry', () => registry.stop());
  const left = ownedProcesses(state);
  if (left.length > 0) errors.push(`processes left: ${left.map((p) => `${p.pid} ${p.args.join(' ')}`).join('; ')}`);
  // Never recurse into a dir that still has something mounted in it.
  if (!keep && mountsUnder(state.workDir).length === 0) {
    await attempt('remove work dir', () => rm(state.workDir, { recursive: true, force: true }));
  } else if (errors.length === 0) {
    markStopped(state.workDir);
  }
  if (errors.length > 0) throw new Error(`e2e teardown (${state.workDir}):\n${errors.join('\n')}`);
}
