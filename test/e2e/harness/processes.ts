/** Process helpers for the e2e harness: logged child processes, readiness waits, and /proc scans. */
import { execFile, spawn } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';

export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  /** stdout and stderr of the process, interleaved. */
  readonly logFile: string;
  /** Resolves (never rejects) once the process has exited. */
  readonly exited: Promise<ExitInfo>;
  /** Set once the process has exited. */
  readonly exitInfo: ExitInfo | undefined;
  /** SIGTERM, then SIGKILL after `timeoutMs`; resolves once the process is gone. Idempotent. */
  stop(timeoutMs?: number): Promise<ExitInfo>;
}

export interface SpawnOptions {
  readonly logDir: string;
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts `command` with its output appended to `<logDir>/<name>.log`; rejects if it cannot be started. */
export async function spawnLogged(name: string, command: string, args: readonly string[], options: SpawnOptions): Promise<ManagedProcess> {
  const logFile = join(options.logDir, `${name}.log`);
  const fd = openSync(logFile, 'a');
  try {
    const child = spawn(command, args, {
      stdio: ['ignore', fd, fd],
      cwd: options.cwd,
      env: options.env ?? process.env,
    });
    let exitInfo: ExitInfo | undefined;
    const exited = new Promise<ExitInfo>((resolve) => {
      child.once('exit', (code, signal) => {
        exitInfo = { code, signal };
        resolve(exitInfo);
      });
    });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    const pid = child.pid;
    if (pid === undefined) throw new Error(`${name}: no pid after spawn`);
    // A daemon must not keep the test process alive when a test forgets stop(): it exits, and its exit hook
    // (and the next run's reclaim) clean up instead of jest hanging until CI's time runs out.
    child.unref();
    const stop = async (timeoutMs = 5000): Promise<ExitInfo> => {
      if (exitInfo !== undefined) return exitInfo;
      child.ref(); // while stopping, its exit is what we wait for
      child.kill('SIGTERM');
      // A cleared timer, not a dangling sleep: a pending timeout keeps jest from exiting.
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    };
    return {
      name,
      pid,
      logFile,
      exited,
      get exitInfo() {
        return exitInfo;
      },
      stop,
    };
  } finally {
    // The child holds its own copy of the descriptor.
    closeSync(fd);
  }
}

export interface RunResult {
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to completion; rejects with its output on a non-zero exit. */
export function run(
  command: string,
  args: readonly string[],
  options: { timeoutMs?: number; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      {
        timeout: options.timeoutMs ?? 60_000,
        maxBuffer: 64 * 1024 * 1024,
        env: options.env ?? process.env,
        cwd: options.cwd,
        encoding: 'utf8',
      },
      (err, stdout, stderr) => {
        if (err) {
          const detail = stderr.trim() || stdout.trim();
          reject(new Error(`${command} ${args.join(' ')} failed: ${err.message}${detail ? `\n${detail}` : ''}`));
          return;
        }
        resolve({ stdout, stderr });
      },
    );
  });
}

/** The last `lines` lines of a log file (empty when it does not exist), for error messages. */
export async function tailFile(path: string, lines = 20): Promise<string> {
  try {
    const text = await readFile(path, 'utf8');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** Polls `check` until it returns true; fails early when `process` exits, quoting its log. */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean>,
  options: { timeoutMs?: number; intervalMs?: number; process?: ManagedProcess } = {},
): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 20_000);
  for (;;) {
    const proc = options.process;
    if (proc?.exitInfo !== undefined) {
      const { code, signal } = proc.exitInfo;
      const log = await tailFile(proc.logFile);
      throw new Error(`${proc.name} exited (code ${String(code)}, signal ${String(signal)}) before ${what}:\n${log}`);
    }
    if (await check()) return;
    if (Date.now() > deadline) {
      const log = proc ? `\n${await tailFile(proc.logFile)}` : '';
      throw new Error(`timed out waiting for ${what}${log}`);
    }
    await sleep(options.intervalMs ?? 50);
  }
}

/** True when a unix socket accepts a connection. */
export function socketAccepts(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

export function waitForUnixSocket(path: string, options: { timeoutMs?: number; process?: ManagedProcess } = {}): Promise<void> {
  return waitUntil(`${path} to accept connections`, () => socketAccepts(path), options);
}

/** A loopback TCP port free right now (another process may still take it before it is used). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => {
        if (port > 0) resolve(port);
        else reject(new Error('no port assigned'));
      });
    });
  });
}

export interface ProcInfo {
  readonly pid: number;
  readonly ppid: number;
  readonly args: readonly string[];
}

/** Every process on the host, read from /proc (synchronous so an exit hook can use it). */
export function listProcesses(): ProcInfo[] {
  const result: ProcInfo[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The command name in parentheses may itself contain spaces or parentheses.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const state = fields[0];
      if (state === 'Z' || state === 'X') continue;
      const args = readFileSync(`/proc/${entry}/cmdline`, 'utf8')
        .split('\0')
        .filter((a) => a !== '');
      result.push({ pid: Number(entry), ppid: Number(fields[1]), args });
    } catch {
      // Exited while being read.
    }
  }
  return result;
}

/** `roots` and all their descendants, children listed before their parents. */
export function withDescendants(roots: readonly number[], processes: readonly ProcInfo[]): number[] {
  const children = new Map<number, number[]>();
  for (const p of processes) {
    const list = children.get(p.ppid) ?? [];
    list.push(p.pid);
    children.set(p.ppid, list);
  }
  const ordered: number[] = [];
  const visit = (pid: number): void => {
    for (const child of children.get(pid) ?? []) visit(child);
    ordered.push(pid);
  };
  for (const root of roots) visit(root);
  return [...new Set(ordered)];
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie still answers signal 0 but is gone for our purposes.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

export function killSync(pids: readonly number[], signal: NodeJS.Signals = 'SIGKILL'): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone.
    }
  }
}

/** Resolves once none of `pids` is alive, or rejects after `timeoutMs`. */
export function waitForExit(pids: readonly number[], timeoutMs = 5000): Promise<void> {
  return waitUntil(`processes ${pids.join(',')} to exit`, () => Promise.resolve(!pids.some(isAlive)), {
    timeoutMs,
  });
}
