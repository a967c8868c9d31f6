/**
 * What the rows stand in front of: the fake runtime (always), and a private containerd when asked for and
 * available. Each is a process whose CPU the bench reads, with the call types it can answer.
 */
import { accessSync, constants, mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { containerdLayout, startContainerd, type Containerd } from '../test/e2e/harness/containerd';
import { run, tailFile } from '../test/e2e/harness/processes';
import { teardownContainerd } from '../test/e2e/harness/teardown';
import { GRPC_PREFIX_BYTES } from './cri-messages';
import { connect, responseBytesOf } from './load';
import { startFakeRuntime, type Watched } from './processes';
import { ALLOWED_IMAGE, startupCalls, type CallType } from './workloads';

export interface Runtime {
  /** `fake-runtime` or `containerd`: the key of its section in the result. */
  readonly name: string;
  readonly description: string;
  readonly socketPath: string;
  readonly process: Watched;
  readonly calls: readonly CallType[];
  /** Unframed response message sizes by call type name. */
  readonly responseBytes: Readonly<Record<string, number>>;
  /** Calls whose first use after a proxy start is measured; empty when the runtime cannot answer them cheaply. */
  readonly startupCalls: readonly CallType[];
  readonly skipped: Readonly<Record<string, string>>;
  stop(): Promise<void>;
}

export async function startFake(dir: string, calls: readonly CallType[]): Promise<Runtime> {
  const socketPath = path.join(dir, 'runtime.sock');
  const { child, responseBytes } = await startFakeRuntime(socketPath);
  return {
    name: 'fake-runtime',
    description: 'test/support/fake-runtime.ts (grpc-js) in a child process, answering fixed bytes',
    socketPath,
    process: child,
    calls,
    responseBytes,
    startupCalls: startupCalls(),
    skipped: {},
    stop: () => child.stop(3000),
  };
}

function onPath(command: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => {
    try {
      accessSync(path.join(dir, command), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Why a private containerd cannot run here, or undefined when it can. */
export function containerdUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'it needs root';
  const missing = ['containerd', 'ctr'].filter((c) => !onPath(c));
  if (missing.length > 0) return `${missing.join(' and ')} not on PATH (Debian package containerd)`;
  return undefined;
}

function watchContainerd(ctd: Containerd): Watched {
  const proc = ctd.process;
  return {
    name: 'containerd',
    pid: proc.pid,
    unlessItDies<T>(work: Promise<T>): Promise<T> {
      const death = proc.exited.then(async (info): Promise<never> => {
        throw new Error(`containerd exited (${String(info.code ?? info.signal)}) unexpectedly:\n${await tailFile(proc.logFile)}`);
      });
      return Promise.race([work, death]);
    },
  };
}

/**
 * A private containerd (its own root, state and socket in `dir`, the CRI plugin on, configured like the e2e
 * suite's) with no pods: Version and ListContainers answer without any. Teardown is the e2e suite's too, handed
 * to `onTeardown` before anything starts.
 */
export async function startPrivateContainerd(
  dir: string,
  calls: readonly CallType[],
  onTeardown: (stop: () => Promise<void>) => void,
): Promise<Runtime> {
  const layout = containerdLayout(path.join(dir, 'ctd'));
  const logDir = path.join(dir, 'logs');
  mkdirSync(logDir, { recursive: true });
  let started: Containerd['process'] | undefined;
  // Safe to run more than once, and before containerd has started: an interrupted start is torn down too.
  const stop = (): Promise<void> => teardownContainerd(layout, started);
  onTeardown(stop);
  try {
    // No pod is ever started: the sandbox image is never pulled and no registry is contacted.
    const settings = { sandboxImage: ALLOWED_IMAGE, registryHost: '127.0.0.1:1', snapshotter: 'native' as const, runtime: 'runc' as const };
    const ctd = await startContainerd(layout, settings, logDir, (p) => (started = p));
    const usable = calls.filter((c) => !c.fakeOnly);
    const skipped = Object.fromEntries(calls.filter((c) => c.fakeOnly).map((c) => [c.name, 'needs data only the fake runtime has']));
    const session = await connect(layout.socket);
    const responseBytes: Record<string, number> = {};
    try {
      for (const call of usable) responseBytes[call.name] = (await responseBytesOf(session, call)) - GRPC_PREFIX_BYTES;
    } finally {
      session.close();
    }
    const version = (await run('containerd', ['--version'])).stdout.trim();
    return {
      name: 'containerd',
      description: `${version}, private (CRI plugin, no pods)`,
      socketPath: layout.socket,
      process: watchContainerd(ctd),
      calls: usable,
      responseBytes,
      startupCalls: [],
      skipped,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
