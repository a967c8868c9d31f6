/** Child processes of the bench (runtime, reference relays, proxy) and what /proc says about them. */
import { fork, spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { socketAccepts } from '../test/e2e/harness/processes';
import type { FakeReadyMessage } from './fake-runtime-process';
import { cliPath } from './paths';

const STDERR_TAIL_BYTES = 8 * 1024;

/** A process whose CPU the bench reads and whose death ends the measurement it is part of. */
export interface Watched {
  readonly name: string;
  readonly pid: number;
  /** `work`, unless the process dies first: then an error saying so. */
  unlessItDies<T>(work: Promise<T>): Promise<T>;
}

export class Child implements Watched {
  /** performance.now() when it was started. */
  readonly startedAt = performance.now();
  private tail = '';
  private exitCode: number | string | undefined;
  /** Settles when the process has exited, with its exit code or the signal that ended it. */
  readonly exited: Promise<number | string>;

  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
  ) {
    proc.stderr?.setEncoding('utf8');
    proc.stderr?.on('data', (text: string) => {
      this.tail = (this.tail + text).slice(-STDERR_TAIL_BYTES);
    });
    this.exited = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        this.exitCode = code ?? signal ?? 'unknown';
        resolve(this.exitCode);
      });
    });
  }

  get pid(): number {
    if (this.proc.pid === undefined) throw new Error(`${this.name} has no pid (did it start?)`);
    return this.proc.pid;
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  get stderrTail(): string {
    return this.tail;
  }

  /** `work`, unless the child dies first: then an error carrying what it last wrote to stderr. */
  async unlessItDies<T>(work: Promise<T>): Promise<T> {
    const death = this.exited.then((code): never => {
      throw new Error(`${this.name} exited (${code}) unexpectedly:\n${this.tail}`);
    });
    return Promise.race([work, death]);
  }

  /** SIGTERM, then SIGKILL if it is still there after `graceMs`. */
  async stop(graceMs: number): Promise<void> {
    if (!this.running) return;
    this.proc.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), graceMs);
    });
    const outcome = await Promise.race([this.exited, late]);
    clearTimeout(timer);
    if (outcome === 'late' && this.running) {
      this.proc.kill('SIGKILL');
      await this.exited;
    }
  }
}

/**
 * Forks a fake runtime (`fake-runtime-process.js` unless another script is named) on `socketPath` and waits until
 * it serves; it learns the response sizes from it.
 */
export async function startFakeRuntime(
  socketPath: string,
  script = 'fake-runtime-process.js',
): Promise<{ child: Child; responseBytes: Readonly<Record<string, number>> }> {
  const proc = fork(path.join(__dirname, script), [socketPath], {
    execArgv: [],
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  const child = new Child('fake runtime', proc);
  const ready = new Promise<FakeReadyMessage>((resolve) => {
    proc.on('message', (message: FakeReadyMessage) => {
      if (message.type === 'ready') resolve(message);
    });
  });
  const message = await child.unlessItDies(ready);
  return { child, responseBytes: message.responseBytes };
}

export interface RelayLaunch {
  readonly name: string;
  readonly listen: string;
  readonly upstream: string;
  /** Extra node flags (profiling). */
  readonly nodeArgs: readonly string[];
  /** A command node runs under (valgrind and its options), if any. */
  readonly wrapper?: readonly string[];
}

/** The program and arguments that run node with `args`, under the launch's wrapper if it has one. */
function nodeCommand(launch: RelayLaunch, args: readonly string[]): [string, string[]] {
  const [program, ...options] = launch.wrapper ?? [];
  return program === undefined ? [process.execPath, [...args]] : [program, [...options, process.execPath, ...args]];
}

/** Starts the built CLI exactly as an operator would: its config file and command line, nothing else. */
export function startProxy(launch: RelayLaunch & { readonly configFile: string }): Child {
  const args = [
    ...launch.nodeArgs,
    cliPath(),
    '--config',
    launch.configFile,
    '--listen',
    `unix://${launch.listen}`,
    '--upstream',
    `unix://${launch.upstream}`,
  ];
  const [program, argv] = nodeCommand(launch, args);
  const proc = spawn(program, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  return new Child(launch.name, proc);
}

/** Forks a reference relay (`splice-process.js`, say) of the compiled bench; it exits when the bench does. */
export function startReference(script: string, launch: RelayLaunch): Child {
  const scriptArgs = [path.join(__dirname, script), launch.listen, launch.upstream];
  if (launch.wrapper !== undefined) {
    // Under a wrapper (valgrind) the IPC channel does not survive: the bench stops the relay itself.
    const [program, argv] = nodeCommand(launch, [...launch.nodeArgs, ...scriptArgs]);
    return new Child(launch.name, spawn(program, argv, { stdio: ['ignore', 'ignore', 'pipe'] }));
  }
  const proc = fork(scriptArgs[0] as string, scriptArgs.slice(1), {
    execArgv: [...launch.nodeArgs],
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  return new Child(launch.name, proc);
}

/** Waits until `socketPath` accepts a connection (no call is made); returns the ms since the child started. */
export async function waitUntilListening(child: Child, socketPath: string, timeoutMs: number): Promise<number> {
  const until = performance.now() + timeoutMs;
  while (!(await child.unlessItDies(socketAccepts(socketPath)))) {
    if (performance.now() > until)
      throw new Error(`${child.name} did not listen on ${socketPath} within ${timeoutMs} ms:\n${child.stderrTail}`);
    await child.unlessItDies(sleep(20));
  }
  return performance.now() - child.startedAt;
}

/**
 * VmRSS once it has stopped moving (five samples 100 ms apart within 1 MB), or after `maxMs`: what a process
 * holds idle, including what it loads in the background after it starts listening.
 */
export async function settledRssKb(child: Child, maxMs: number): Promise<{ readonly rssKb: number; readonly settled: boolean }> {
  const samples: number[] = [];
  const until = performance.now() + maxMs;
  for (;;) {
    samples.push(memoryOf(child.pid).rssKb);
    const recent = samples.slice(-5);
    const latest = recent[recent.length - 1] ?? Number.NaN;
    if (recent.length === 5 && Math.max(...recent) - Math.min(...recent) <= 1024) return { rssKb: latest, settled: true };
    if (performance.now() > until) return { rssKb: latest, settled: false };
    await child.unlessItDies(sleep(100));
  }
}

let ticksPerSecond: number | undefined;

/** The unit of /proc/PID/stat times (USER_HZ); almost always 100. */
export function clockTicksPerSecond(): number {
  if (ticksPerSecond === undefined) {
    let value = 100;
    try {
      const parsed = Number.parseInt(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim(), 10);
      if (parsed > 0) value = parsed;
    } catch {
      // No getconf: 100 is what Linux has used on every mainstream architecture.
    }
    ticksPerSecond = value;
  }
  return ticksPerSecond;
}

/** utime + stime of a process, in µs. */
export function cpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may hold spaces; count fields after its closing one.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1e6) / clockTicksPerSecond();
}

export interface MemoryUse {
  readonly rssKb: number;
  readonly hwmKb: number;
}

export function memoryOf(pid: number): MemoryUse {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => {
    const match = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
    return match?.[1] === undefined ? Number.NaN : Number(match[1]);
  };
  return { rssKb: kb('VmRSS'), hwmKb: kb('VmHWM') };
}

export interface SyscallCounts {
  readonly reads: number;
  readonly writes: number;
}

/** read-like and write-like syscalls so far (/proc/PID/io): how many socket round trips a call costs. */
export function syscallsOf(pid: number): SyscallCounts {
  const io = readFileSync(`/proc/${pid}/io`, 'utf8');
  const count = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(io)?.[1] ?? Number.NaN);
  return { reads: count('syscr'), writes: count('syscw') };
}
