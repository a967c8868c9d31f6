/**
 * The two systemd protocols the proxy speaks: sd_listen_fds (the listening socket comes from cri-proxy.socket,
 * which stays open while the service restarts) and sd_notify (readiness, for Type=notify).
 */
import { spawn } from 'node:child_process';
import { readFileSync, readlinkSync } from 'node:fs';
import { errorMessage } from '../errors';
import type { Logger } from '../log';
import { delay } from '../scheduler';

/** sd_listen_fds(3): passed descriptors start at 3. */
const LISTEN_FDS_START = 3;
/** FileDescriptorName= of the CRI socket in cri-proxy.socket, used when several sockets are passed. */
const CRI_SOCKET_NAME = 'cri-proxy';

export interface PassedSocket {
  readonly fd: number;
  /** From LISTEN_FDNAMES; `unknown` when systemd gave no names, as sd_listen_fds_with_names does. */
  readonly name: string;
}

/**
 * The sockets systemd passed to process `pid` (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES), none when the
 * variables are absent or meant for another process. Like sd_listen_fds(unset_environment=1), it removes the
 * variables so that no child process takes the sockets for its own.
 */
export function takePassedSockets(env: NodeJS.ProcessEnv, pid: number): PassedSocket[] {
  const { LISTEN_PID: forPid, LISTEN_FDS: count, LISTEN_FDNAMES: names } = env;
  delete env['LISTEN_PID'];
  delete env['LISTEN_FDS'];
  delete env['LISTEN_FDNAMES'];
  if (forPid === undefined || count === undefined) return [];
  if (!/^[1-9]\d*$/.test(forPid)) throw new Error(`socket activation: LISTEN_PID "${forPid}" is not a process id`);
  if (Number(forPid) !== pid) return [];
  if (!/^\d+$/.test(count)) throw new Error(`socket activation: LISTEN_FDS "${count}" is not a number`);
  const nameList = names === undefined ? [] : names.split(':');
  return Array.from({ length: Number(count) }, (_, i) => ({ fd: LISTEN_FDS_START + i, name: nameList[i] || 'unknown' }));
}

/** The CRI socket among those passed: the only one, or the one named `cri-proxy`. */
export function criSocket(sockets: readonly PassedSocket[]): PassedSocket | undefined {
  if (sockets.length <= 1) return sockets[0];
  const named = sockets.filter((s) => s.name === CRI_SOCKET_NAME);
  if (named.length === 1) return named[0];
  throw new Error(
    `socket activation passed ${sockets.length} sockets (${sockets.map((s) => s.name).join(', ')}); ` +
      `name the CRI one with FileDescriptorName=${CRI_SOCKET_NAME}`,
  );
}

/** The path a passed unix socket is bound to, from /proc (undefined when it cannot be told). */
function boundPath(fd: number): string | undefined {
  try {
    const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`))?.[1];
    if (inode === undefined) return undefined;
    // Num RefCount Protocol Flags Type St Inode Path
    for (const line of readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields[6] === inode) return fields[7];
    }
  } catch {
    // No /proc: the path is only used in messages.
  }
  return undefined;
}

/**
 * The descriptor to listen on when systemd passed the CRI socket in, else undefined (the proxy binds
 * `configuredPath` itself). A socket bound elsewhere than `listen` says is used all the same, with a warning:
 * the socket unit is what kubelet was pointed at.
 */
export function socketFromSystemd(configuredPath: string, log: Logger, env: NodeJS.ProcessEnv = process.env): number | undefined {
  const socket = criSocket(takePassedSockets(env, process.pid));
  if (socket === undefined) return undefined;
  const path = boundPath(socket.fd);
  log.info('listening on the socket systemd passed in', { fd: socket.fd, name: socket.name, path });
  if (path !== undefined && path !== configuredPath) {
    log.warn('the socket systemd passed in is not the one "listen" names; serving on it', { path, listen: configuredPath });
  }
  return socket.fd;
}

/**
 * sd_notify through `systemd-notify`: Node.js has no unix datagram sockets. The unit needs NotifyAccess=all
 * (the sender is a child); systemd-notify waits on a barrier before exiting, so systemd still sees it in the
 * unit's cgroup. Does nothing unless systemd asked for notifications (NOTIFY_SOCKET). Never rejects.
 */
export function notifySystemd(fields: readonly string[], log: Logger, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  if (env['NOTIFY_SOCKET'] === undefined || env['NOTIFY_SOCKET'] === '') return Promise.resolve();
  return new Promise((resolve) => {
    const child = spawn('systemd-notify', [...fields], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', (err) => {
      log.warn('cannot notify systemd', { fields, error: errorMessage(err) });
      resolve();
    });
    child.once('close', (code) => {
      if (code !== 0) log.warn('systemd-notify failed', { fields, code, error: stderr.trim() });
      resolve();
    });
  });
}

export interface ReadinessSource {
  readiness(): Promise<{ readonly ready: boolean; readonly detail: string }>;
}

/**
 * Tells systemd READY=1 once the runtime answers Version through the proxy, asking again every `retryMs`
 * until then or until `stopped` aborts. Under systemd only (NOTIFY_SOCKET); kubelet waits for it.
 */
export async function notifyReadyOnceRuntimeAnswers(
  source: ReadinessSource,
  log: Logger,
  stopped: AbortSignal,
  retryMs = 1000,
  env: NodeJS.ProcessEnv = process.env,
): Promise<void> {
  if (env['NOTIFY_SOCKET'] === undefined || env['NOTIFY_SOCKET'] === '') return;
  let lastDetail: string | undefined;
  while (!stopped.aborted) {
    const { ready, detail } = await source.readiness();
    if (stopped.aborted) return;
    if (ready) {
      await notifySystemd(['READY=1', `STATUS=serving: ${detail}`], log, env);
      return;
    }
    if (detail !== lastDetail) {
      log.warn('not ready yet: waiting for the runtime to answer', { detail });
      await notifySystemd([`STATUS=waiting for the runtime: ${detail}`], log, env);
      lastDetail = detail;
    }
    await delay(retryMs, stopped);
  }
}
