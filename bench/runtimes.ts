/**
 * What the rows stand in front of: the fake runtime (always), and a private containerd when asked for and
 * available. Each is a process whose CPU the bench reads, with the call types it can answer.
 */
import { accessSync, constants, existsSync } from 'node:fs';
import * as path from 'node:path';
import { startEnvironment, type E2eEnvironment } from '../test/e2e/harness/environment';
import { run } from '../test/e2e/harness/processes';
import { GRPC_PREFIX_BYTES } from './cri-messages';
import { connect, responseBytesOf } from './load';
import { criCall, type PodTemplate } from './pods';
import { startFakeRuntime, type Watched } from './processes';
import { startupCalls, type CallType } from './workloads';

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
  /** What the pod-start burst starts pods with; undefined where pods cannot run (the fake runtime). */
  readonly pods?: PodTemplate;
  /** Image patterns the proxies' copy of the image policy must allow too (the private registry's). */
  readonly allowImages?: readonly string[];
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

/** A process known only by its pid: it died when /proc no longer has it. */
function watchPid(name: string, pid: () => number): Watched {
  return {
    name,
    get pid() {
      return pid();
    },
    unlessItDies<T>(work: Promise<T>): Promise<T> {
      let timer: NodeJS.Timeout | undefined;
      const death = new Promise<never>((_, reject) => {
        timer = setInterval(() => {
          if (!existsSync(`/proc/${pid()}`)) reject(new Error(`${name} (pid ${pid()}) exited unexpectedly`));
        }, 500);
      });
      return Promise.race([work, death]).finally(() => clearInterval(timer));
    },
  };
}

/**
 * The e2e suite's environment (test/e2e/harness): a private containerd (its own root, state and socket, the CRI
 * plugin, CNI, runc), a private registry and the busybox and pause images pushed to it, both pulled before the
 * measured calls so that the pod-start burst measures starts, not downloads. Version and ListContainers are
 * measured while no pod runs. Teardown is the environment's own, handed to `onTeardown` first.
 */
export async function startPrivateContainerd(
  calls: readonly CallType[],
  onTeardown: (stop: () => Promise<void>) => void,
): Promise<Runtime> {
  const holder: { env?: E2eEnvironment } = {};
  onTeardown(() => holder.env?.stop() ?? Promise.resolve());
  const env = (holder.env = await startEnvironment());
  const usable = calls.filter((c) => !c.fakeOnly);
  const skipped = Object.fromEntries(calls.filter((c) => c.fakeOnly).map((c) => [c.name, 'needs data only the fake runtime has']));
  const session = await connect(env.containerdSocket);
  const responseBytes: Record<string, number> = {};
  try {
    for (const image of [env.pauseImage, env.busyboxImage]) {
      const pulled = await criCall(session, 'PullImage', { image: { image } }, 120_000);
      if (pulled.code !== 0) throw new Error(`containerd could not pull ${image}: ${pulled.message}`);
    }
    for (const call of usable) responseBytes[call.name] = (await responseBytesOf(session, call)) - GRPC_PREFIX_BYTES;
  } finally {
    session.close();
  }
  const version = (await run('containerd', ['--version'])).stdout.trim();
  return {
    name: 'containerd',
    description: `${version}, private (CRI plugin, CNI bridge, ${env.snapshotter}, runc), no pods but the burst's`,
    socketPath: env.containerdSocket,
    process: watchPid('containerd', () => env.containerdPid),
    calls: usable,
    responseBytes,
    startupCalls: [],
    skipped,
    pods: { image: env.busyboxImage, command: ['sleep', '3600'], logDir: env.podLogDir },
    allowImages: [`${env.registryHost}/**`],
    stop: () => env.stop(),
  };
}
