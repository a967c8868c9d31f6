/** A private containerd (CRI plugin, runc, CNI bridge) whose every path lives under the run's work dir. */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run, spawnLogged, tailFile, waitForUnixSocket, type ManagedProcess } from './processes';

export type Snapshotter = 'overlayfs' | 'native';

/** Where one private containerd keeps everything; also what teardown needs to find its leftovers. */
export interface ContainerdLayout {
  readonly workDir: string;
  readonly socket: string;
  readonly root: string;
  readonly state: string;
  readonly runcRoot: string;
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
}

/** `bridge` is given only when re-deriving the layout of an earlier run (see `bridgeOf`). */
export function containerdLayout(workDir: string, bridge?: string): ContainerdLayout {
  const dir = join(workDir, 'containerd');
  return {
    workDir,
    socket: join(workDir, 'containerd.sock'),
    root: join(dir, 'root'),
    state: join(dir, 'state'),
    runcRoot: join(dir, 'runc'),
    configFile: join(dir, 'config.toml'),
    cniConfDir: join(dir, 'cni', 'conf'),
    cniDataDir: join(dir, 'cni', 'data'),
    // Unique per run, so concurrent runs never share (or delete) each other's bridge; max 15 chars.
    bridge: bridge ?? `criproxy${randomBytes(3).toString('hex')}`,
    subnet: '10.88.77.0/24',
  };
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
    [`${CRI}.registry.mirrors."${settings.registryHost}"`, 'endpoint', [`http://${settings.registryHost}`]],
    ['plugins."io.containerd.internal.v1.opt"', 'path', join(layout.root, 'opt')],
  ];
  return edits.reduce((text, [table, key, value]) => setTomlKey(text, table, key, value), defaults);
}

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

/** The bridge an earlier run configured in its work dir, if it got that far. */
export function bridgeOf(workDir: string): string | undefined {
  try {
    const text = readFileSync(join(containerdLayout(workDir, '').cniConfDir, CONFLIST), 'utf8');
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
    [layout.root, layout.state, layout.runcRoot, layout.cniConfDir, layout.cniDataDir].map((d) =>
      mkdir(d, { recursive: true }),
    ),
  );
  const { stdout: defaults } = await run('containerd', ['config', 'default']);
  await writeFile(layout.configFile, renderContainerdConfig(defaults, layout, settings));
  await writeFile(join(layout.cniConfDir, CONFLIST), cniConfList(layout));

  const proc = await spawnLogged('containerd', 'containerd', ['--config', layout.configFile], { logDir });
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
  return { layout, snapshotter: settings.snapshotter, process: proc };
}
