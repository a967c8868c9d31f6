/**
 * Whoever can write the CRI socket, or replace it, drives the runtime: that is root on the node. These checks
 * refuse settings that hand that to other users, unless `allowInsecureSocket: true` says it is meant.
 */
import { statSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';
import type { Registry } from 'prom-client';
import type { Logger } from '../log';
import { ensureGauge } from '../metrics/registry';
import type { SocketMode, TcpListenAddress, UnixAddress } from './address';
import type { PathIssue } from './issues';
import { METRIC } from '../metrics/names';

/** The settings these checks read (a ProxyConfig has them). */
interface SocketSettings {
  readonly listen: UnixAddress;
  readonly socketMode: SocketMode;
  readonly allowInsecureSocket: boolean;
  readonly http: { readonly listen: TcpListenAddress };
}

const S_ISGID = 0o2000;
const S_ISVTX = 0o1000;

const octal = (mode: number): string => `"${(mode & 0o7777).toString(8).padStart(4, '0')}"`;

/** Why a socket mode is unsafe: write access for every user. Read access alone lets no one connect. */
export function socketModeProblem(mode: number): string | undefined {
  if ((mode & 0o002) === 0) return undefined;
  return (
    `${octal(mode)} lets every user on the node write to the CRI socket, and so drive the runtime (root): ` +
    'use "0660" or "0600", or set allowInsecureSocket: true'
  );
}

/**
 * Why the socket's directory (if it exists) or one of the directories above it lets another user put a socket
 * of their own in its place: writable by others, group-writable for a group that could not write the socket
 * anyway, or owned by another user. A directory above may be writable by others when it is sticky (`/tmp`):
 * then no one can rename what is not theirs.
 */
export function listenDirectoryProblem(socketPath: string, socketMode: number): string | undefined {
  const uid = process.geteuid?.() ?? 0;
  const gid = process.getegid?.() ?? 0;
  const socketDir = dirname(socketPath);
  for (let dir = socketDir; ; dir = dirname(dir)) {
    const stats = statOrUndefined(dir);
    if (stats?.isDirectory()) {
      const problem = directoryProblem(dir, stats, dir === socketDir, socketMode, uid, gid);
      if (problem !== undefined) return `${problem}: another user could replace the CRI socket; fix it, or set allowInsecureSocket: true`;
    }
    if (dirname(dir) === dir) return undefined;
  }
}

function directoryProblem(dir: string, s: Stats, isSocketDir: boolean, socketMode: number, uid: number, gid: number): string | undefined {
  if (s.uid !== 0 && s.uid !== uid) return `${dir} is owned by another user (uid ${s.uid})`;
  const sticky = (s.mode & S_ISVTX) !== 0;
  if ((s.mode & 0o002) !== 0 && (isSocketDir || !sticky)) return `${dir} is writable by every user (mode ${octal(s.mode)})`;
  if ((s.mode & 0o020) === 0 || (!isSocketDir && sticky)) return undefined;
  // The socket's group is the directory's when it is setgid, the process's otherwise.
  const socketGroup = (s.mode & S_ISGID) !== 0 ? s.gid : gid;
  if (isSocketDir && s.gid === socketGroup && (socketMode & 0o020) !== 0) return undefined;
  return `${dir} is writable by group ${s.gid} (mode ${octal(s.mode)}), which may not write the socket itself`;
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

/** The listen directory's problem as a config issue (at `listen`), unless allowed: for validation. */
export function listenDirectoryIssues(config: Omit<SocketSettings, 'http'>): PathIssue[] {
  if (config.allowInsecureSocket) return [];
  const problem = listenDirectoryProblem(config.listen.path, config.socketMode.mode);
  return problem === undefined ? [] : [{ path: ['listen'], message: problem }];
}

const LOOPBACK = /^(?:localhost|127(?:\.\d{1,3}){3}|::1|\[::1\])$/i;

/**
 * At start: refuses an unsafe socket unless allowed (validation already did, for configs from a file), warns
 * about what was allowed and about a metrics listener reachable from the network, and says so in
 * `cri_proxy_insecure_settings` for fleet-wide alerting.
 */
export function checkSocketSafety(config: SocketSettings, log: Logger, registry: Registry, inheritedSocket: boolean): void {
  const gauge = ensureGauge(registry, {
    name: METRIC.insecureSettings,
    help: 'Settings in force that give other users or machines access: socketMode, listen (its directory), http.listen (not loopback)',
    labelNames: ['setting'] as const,
  });
  const found: [string, string][] = [];
  if (!inheritedSocket) {
    const mode = config.socketMode.mode;
    const modeProblem = socketModeProblem(mode);
    const dirProblem = listenDirectoryProblem(config.listen.path, mode);
    if (modeProblem !== undefined) found.push(['socketMode', modeProblem]);
    if (dirProblem !== undefined) found.push(['listen', dirProblem]);
  }
  const [first] = found;
  if (first !== undefined && !config.allowInsecureSocket) throw new Error(`${first[0]}: ${first[1]}`);
  for (const [setting, problem] of found) log.warn('insecure socket allowed (allowInsecureSocket: true)', { setting, problem });
  const http = config.http.listen;
  const exposed = http.endpoint !== undefined && !LOOPBACK.test(http.endpoint.host);
  if (exposed) {
    log.warn('http.listen is not a loopback address: /metrics, /healthz and /readyz are reachable from other machines', {
      setting: 'http.listen',
      address: http.written,
    });
  }
  for (const setting of ['socketMode', 'listen']) gauge.set({ setting }, found.some(([s]) => s === setting) ? 1 : 0);
  gauge.set({ setting: 'http.listen' }, exposed ? 1 : 0);
}
