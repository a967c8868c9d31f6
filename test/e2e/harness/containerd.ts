/** A private containerd (CRI plugin, runc or crun, CNI bridge) whose every path lives under the run's work dir. */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createCriClient } from './cri-client';
import { run, spawnLogged, tailFile, waitForUnixSocket, waitUntil, type ManagedProcess } from './processes';

export type Snapshotter = 'overlayfs' | 'native';

/** The OCI runtime a private containerd runs pods with by default (both are runc-compatible, under the runc shim). */
export type OciRuntime = 'runc' | 'crun';

/** The first instance's name: its dir and socket are the ones a single-containerd run has always used. */
export const FIRST_CONTAINERD = 'containerd';
const INSTANCE_NAME = /^containerd(?:-[a-z0-9]+)?$/;

/** Where one private containerd keeps everything; also what teardown needs to find its leftovers. */
export interface ContainerdLayout {
  readonly workDir: string;
  /** `containerd`, or `containerd-<suffix>` for further instances: names `dir` and `socket`. */
  readonly name: string;
  /** Everything of this instance but its socket (mounts included) lives under here. */
  readonly dir: string;
  readonly socket: string;
  readonly root: string;
  readonly state: string;
  /** State roots of the OCI runtimes (`--root`), so none is shared with a system containerd. */
  readonly runcRoot: string;
  readonly crunRoot: string;
  /** What the shim runs as crun: /usr/bin/crun, through CRUN_LAUNCHER (see there). */
  readonly crunBinary: string;
  readonly configFile: string;
  readonly cniConfDir: string;
  readonly cniDataDir: string;
  /** Bridge interface and CNI network name (the same string). */
  readonly bridge: string;
  readonly subnet: string;
}

export interface ContainerdSettings {
  readonly sandboxImage: string;
  /** `127.0.0.1:PORT`: pulled from over plain http. */
  readonly registryHost: string;
  readonly snapshotter: Snapshotter;
  /** The default runtime of pods without a runtime handler. */
  readonly runtime: OciRuntime;
}

export interface LayoutOptions {
  /** FIRST_CONTAINERD unless given. */
  readonly name?: string;
  /** Given only when re-deriving the layout of an earlier run (see `bridgeOf`). */
  readonly bridge?: string;
  readonly subnet?: string;
}

export function containerdLayout(workDir: string, options: LayoutOptions = {}): ContainerdLayout {
  const name = options.name ?? FIRST_CONTAINERD;
  if (!INSTANCE_NAME.test(name)) throw new Error(`containerd instance name "${name}" must be "containerd" or "containerd-<a-z0-9>"`);
  const dir = join(workDir, name);
  return {
    workDir,
    name,
    dir,
    socket: join(workDir, `${name}.sock`),
    root: join(dir, 'root'),
    state: join(dir, 'state'),
    runcRoot: join(dir, 'runc'),
    crunRoot: join(dir, 'crun'),
    crunBinary: join(dir, 'crun-launcher'),
    configFile: join(dir, 'config.toml'),
    cniConfDir: join(dir, 'cni', 'conf'),
    cniDataDir: join(dir, 'cni', 'data'),
    // Unique per run, so concurrent runs never share (or delete) each other's bridge; max 15 chars.
    bridge: options.bridge ?? `criproxy${randomBytes(3).toString('hex')}`,
    subnet: options.subnet ?? '10.88.77.0/24',
  };
}

/** The layouts of every instance an earlier run set up in `workDir` (for reclaiming it). */
export function existingLayouts(workDir: string): ContainerdLayout[] {
  let entries: string[];
  try {
    entries = readdirSync(workDir);
  } catch {
    return [];
  }
  return entries
    .filter((e) => INSTANCE_NAME.test(e))
    .sort()
    .map((name) => containerdLayout(workDir, { name, bridge: bridgeOf(join(workDir, name)) ?? '' }));
}

type TomlValue = string | boolean | number | readonly string[];

function tomlValue(value: TomlValue): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'boolean' || typeof value === 'number') return String(value);
  return `[${value.map((v) => JSON.stringify(v)).join(', ')}]`;
}

const isHeader = (line: string): boolean => /^\s*\[/.test(line);

/**
 * Sets `key` in TOML `table` ('' for the top level) by editing the text: replaces the existing line, else adds
 * one under the table header, else appends the table. Enough for `containerd config default` output, whose
 * keys are bare and whose arrays fit on one line.
 */
export function setTomlKey(text: string, table: string, key: string, value: TomlValue): string {
  const lines = text.split('\n');
  let start = -1;
  if (table === '') start = -1;
  else {
    start = lines.findIndex((l) => l.trim() === `[${table}]`);
    if (start < 0) return `${text.trimEnd()}\n\n[${table}]\n  ${key} = ${tomlValue(value)}\n`;
  }
  let end = lines.findIndex((l, i) => i > start && isHeader(l));
  if (end < 0) end = lines.length;
  const keyPattern = new RegExp(`^(\\s*)${key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*=`);
  for (let i = start + 1; i < end; i++) {
    const match = keyPattern.exec(lines[i] ?? '');
    if (match) {
      lines[i] = `${match[1] ?? ''}${key} = ${tomlValue(value)}`;
      return lines.join('\n');
    }
  }
  const indent = table === '' ? '' : `${/^\s*/.exec(lines[start] ?? '')?.[0] ?? ''}  `;
  lines.splice(start + 1, 0, `${indent}${key} = ${tomlValue(value)}`);
  return lines.join('\n');
}

const CRI = 'plugins."io.containerd.grpc.v1.cri"';

/** The e2e containerd config: the packaged defaults with every path, address and CRI knob made ours. */
export function renderContainerdConfig(defaults: string, layout: ContainerdLayout, settings: ContainerdSettings): string {
  const edits: [string, string, TomlValue][] = [
    ['', 'root', layout.root],
    ['', 'state', layout.state],
    // Never loaded here; disabling them keeps start-up quick and the log free of their probe errors.
    ['', 'disabled_plugins', ['aufs', 'btrfs', 'zfs', 'devmapper'].map((s) => `io.containerd.snapshotter.v1.${s}`)],
    ['grpc', 'address', layout.socket],
    ['ttrpc', 'address', `${layout.socket}.ttrpc`],
    ['debug', 'address', ''],
    ['metrics', 'address', ''],
    [CRI, 'sandbox_image', settings.sandboxImage],
    // These VMs refuse a negative oom_score_adj; without this every sandbox fails to start.
    [CRI, 'restrict_oom_score_adj', true],
    // No profile loading (apparmor_parser) or labels needed for throwaway test pods.
    [CRI, 'disable_apparmor', true],
    [CRI, 'enable_selinux', false],
    // Pod network namespaces go under our state dir instead of /var/run/netns, so teardown finds them all.
    [CRI, 'netns_mounts_under_state_dir', true],
    [CRI, 'stream_server_address', '127.0.0.1'],
    [CRI, 'stream_server_port', '0'],
    [CRI, 'systemd_cgroup', false],
    [`${CRI}.cni`, 'bin_dir', '/usr/lib/cni'],
    [`${CRI}.cni`, 'conf_dir', layout.cniConfDir],
    [`${CRI}.cni`, 'max_conf_num', 1],
    [`${CRI}.containerd`, 'snapshotter', settings.snapshotter],
    [`${CRI}.containerd.runtimes.runc.options`, 'SystemdCgroup', false],
    // runc's state would otherwise be shared with a system containerd under /run/containerd/runc.
    [`${CRI}.containerd.runtimes.runc.options`, 'Root', layout.runcRoot],
    // crun under the same shim: only the binary (and its state root) differ.
    [`${CRI}.containerd.runtimes.crun`, 'runtime_type', 'io.containerd.runc.v2'],
    [`${CRI}.containerd.runtimes.crun.options`, 'BinaryName', layout.crunBinary],
    [`${CRI}.containerd.runtimes.crun.options`, 'SystemdCgroup', false],
    [`${CRI}.containerd.runtimes.crun.options`, 'Root', layout.crunRoot],
    [`${CRI}.containerd`, 'default_runtime_name', settings.runtime],
    [`${CRI}.registry.mirrors."${settings.registryHost}"`, 'endpoint', [`http://${settings.registryHost}`]],
    ['plugins."io.containerd.internal.v1.opt"', 'path', join(layout.root, 'opt')],
  ];
  return edits.reduce((text, [table, key, value]) => setTomlKey(text, table, key, value), defaults);
}

/**
 * Runs /usr/bin/crun. crun 1.8 refuses to start containers on a cgroup v1+v2 hybrid host whose v2 hierarchy has
 * any controller (CI's VMs are such hosts; runc does not mind); there it runs in a mount namespace of its own
 * without the v2 mount, so it sees a plain v1 host and manages the v1 cgroups as runc does. Elsewhere it is
 * crun, unchanged.
 */
const CRUN_LAUNCHER = `#!/bin/sh
if grep -q . /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null; then
  exec unshare --mount sh -c 'umount -l /sys/fs/cgroup/unified && exec /usr/bin/crun "$@"' crun "$@"
fi
exec /usr/bin/crun "$@"
`;

/**
 * CNI: a bridge with host-local IPAM (its state in our dir). No loopback entry: containerd's CRI adds its own
 * `cni-loopback` network (the `loopback` plugin from bin_dir) to every pod.
 */
export function cniConfList(layout: ContainerdLayout): string {
  const config = {
    cniVersion: '1.0.0',
    name: layout.bridge,
    plugins: [
      {
        type: 'bridge',
        bridge: layout.bridge,
        // No gateway: the host keeps no address on the bridge and ip_forward is left alone.
        isGateway: false,
        ipMasq: false,
        hairpinMode: true,
        ipam: { type: 'host-local', dataDir: layout.cniDataDir, ranges: [[{ subnet: layout.subnet }]] },
      },
    ],
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

const CONFLIST = '10-criproxy.conflist';

/** The bridge an earlier run configured in an instance's dir, if it got that far. */
function bridgeOf(instanceDir: string): string | undefined {
  try {
    const text = readFileSync(join(instanceDir, 'cni', 'conf', CONFLIST), 'utf8');
    const name = (JSON.parse(text) as { name?: unknown }).name;
    return typeof name === 'string' && /^criproxy[0-9a-f]{6}$/.test(name) ? name : undefined;
  } catch {
    return undefined;
  }
}

/** overlayfs if this kernel can mount it on the work dir's file system, else the (slower) native snapshotter. */
export async function detectSnapshotter(workDir: string): Promise<Snapshotter> {
  const dir = join(workDir, 'overlay-probe');
  const [lower, upper, work, merged] = ['lower', 'upper', 'work', 'merged'].map((d) => join(dir, d));
  if (lower === undefined || upper === undefined || work === undefined || merged === undefined) return 'native';
  await Promise.all([lower, upper, work, merged].map((d) => mkdir(d, { recursive: true })));
  try {
    await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, merged]);
  } catch {
    await rm(dir, { recursive: true, force: true });
    return 'native';
  }
  await run('umount', [merged]);
  await rm(dir, { recursive: true, force: true });
  return 'overlayfs';
}

export interface Containerd {
  readonly layout: ContainerdLayout;
  readonly snapshotter: Snapshotter;
  readonly runtime: OciRuntime;
  readonly process: ManagedProcess;
}

/** Writes config and CNI files, starts containerd, and waits until its socket answers and CRI is loaded. */
export async function startContainerd(
  layout: ContainerdLayout,
  settings: ContainerdSettings,
  logDir: string,
  onStarted: (proc: ManagedProcess) => void,
): Promise<Containerd> {
  await Promise.all(
    [layout.root, layout.state, layout.runcRoot, layout.crunRoot, layout.cniConfDir, layout.cniDataDir].map((d) =>
      mkdir(d, { recursive: true }),
    ),
  );
  const { stdout: defaults } = await run('containerd', ['config', 'default']);
  await writeFile(layout.configFile, renderContainerdConfig(defaults, layout, settings));
  await writeFile(layout.crunBinary, CRUN_LAUNCHER, { mode: 0o755 });
  await writeFile(join(layout.cniConfDir, CONFLIST), cniConfList(layout));

  const proc = await spawnLogged(layout.name, 'containerd', ['--config', layout.configFile], { logDir });
  // Registered before waiting, so a containerd that starts but never answers is still torn down.
  onStarted(proc);
  await waitForUnixSocket(layout.socket, { timeoutMs: 30_000, process: proc });
  // The socket answers even when the CRI plugin failed to load (bad config): check it explicitly.
  const { stdout } = await run('ctr', ['--address', layout.socket, 'plugins', 'ls']);
  const cri = stdout.split('\n').find((l) => /\bio\.containerd\.grpc\.v1\s+cri\b/.test(l));
  if (cri === undefined || !/\bok\s*$/.test(cri)) {
    const log = await tailFile(proc.logFile, 1000);
    const reasons = log.split('\n').filter((l) => /failed to load plugin|level=(error|fatal)/.test(l));
    const detail = reasons.length > 0 ? reasons.slice(-10).join('\n') : log.split('\n').slice(-20).join('\n');
    throw new Error(`containerd's CRI plugin is not loaded (${cri?.trim().replace(/\s+/g, ' ') ?? 'absent'}):\n${detail}`);
  }
  await criServing(layout.socket, proc);
  return { layout, snapshotter: settings.snapshotter, runtime: settings.runtime, process: proc };
}

/**
 * Resolves once the CRI service answers: after a restart it first recovers its pods and containers, answering
 * "server is not initialized yet" meanwhile (the more it holds, the longer).
 */
async function criServing(socket: string, proc: ManagedProcess): Promise<void> {
  const client = createCriClient(socket);
  try {
    await waitUntil(
      `the CRI service on ${socket}`,
      async () => {
        try {
          await client.call('ListPodSandbox', {}, { timeoutMs: 5_000 });
          return true;
        } catch (err) {
          if (/not initialized/.test((err as { details?: string }).details ?? '')) return false;
          throw err;
        }
      },
      { timeoutMs: 30_000, process: proc },
    );
  } finally {
    client.close();
  }
}

/** The containers an OCI runtime has in its state root (`<runtime> --root ROOT list -q`). */
export async function runtimeContainers(runtime: OciRuntime, root: string): Promise<string[]> {
  if (!existsSync(root)) return [];
  const { stdout } = await run(runtime, ['--root', root, 'list', '-q']);
  return stdout.split('\n').filter((l) => l.trim() !== '');
}
