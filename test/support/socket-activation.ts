import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, renameSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

const PARENT = path.resolve(__dirname, '../../dist/test/support/socket-activation-parent.js');

export interface ProxyExit {
  readonly pid: number;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

type ParentEvent = { event: 'started'; pid: number } | ({ event: 'exited' } & ProxyExit);

/**
 * A listening unix socket held by a separate parent process that starts, signals and restarts a program on
 * it, as systemd does with a .socket unit (see socket-activation-parent.ts).
 */
export class SocketActivation {
  private exits: ProxyExit[] = [];
  private waiters: (() => void)[] = [];

  private constructor(private readonly parent: ChildProcess) {
    parent.on('message', (message: ParentEvent) => {
      if (message.event === 'exited') this.exits.push({ pid: message.pid, code: message.code, signal: message.signal });
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  /** Binds `socketPath` and hands it to a new parent process; this process keeps no copy. */
  static async create(
    socketPath: string,
    logFile: string,
    fdName: string,
    program: string,
    args: readonly string[],
    env: NodeJS.ProcessEnv = process.env,
  ): Promise<SocketActivation> {
    if (!existsSync(PARENT)) throw new Error(`${PARENT} is missing: run "npm run build" first`);
    // A server's close() unlinks the path it bound; bound under another name and renamed, the socket file
    // outlives this process's copy, as systemd's socket outlives the services it starts.
    const binding = `${socketPath}.binding`;
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(binding, resolve);
    });
    renameSync(binding, socketPath);
    const fd = (server as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
    if (typeof fd !== 'number') throw new Error('no descriptor for the listening socket');
    const parent = fork(PARENT, [logFile, fdName, program, ...args], { env, stdio: ['ignore', 'inherit', 'inherit', fd, 'ipc'] });
    await new Promise<void>((resolve, reject) => {
      parent.once('spawn', resolve);
      parent.once('error', reject);
    });
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return new SocketActivation(parent);
  }

  /** Starts the program on the socket; resolves with its pid. */
  start(): Promise<number> {
    return new Promise((resolve) => {
      const onStarted = (message: ParentEvent): void => {
        if (message.event !== 'started') return;
        this.parent.off('message', onStarted);
        resolve(message.pid);
      };
      this.parent.on('message', onStarted);
      this.parent.send({ cmd: 'start' });
    });
  }

  signal(signal: NodeJS.Signals): void {
    this.parent.send({ cmd: 'signal', signal });
  }

  /** Resolves once the program started as `pid` has exited. */
  async exited(pid: number): Promise<ProxyExit> {
    for (;;) {
      const exit = this.exits.find((e) => e.pid === pid);
      if (exit) return exit;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** Ends the program, if running, and the parent with it; the socket file stays, as systemd's would. */
  async close(): Promise<void> {
    if (this.parent.exitCode !== null || this.parent.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => this.parent.once('exit', () => resolve()));
    this.parent.disconnect();
    await gone;
  }
}
