/**
 * Child-process entry: the in-process fake runtime on its own, so its CPU is not counted with the proxy's or
 * the load generator's. Started by the bench with an IPC channel: `node fake-runtime-process.js SOCKET`.
 */
import { FakeRuntime } from '../test/support/fake-runtime';
import {
  createContainerResponse,
  largeListContainersRequest,
  largeListContainersResponse,
  listContainersResponse,
  runPodSandboxResponse,
  versionResponse,
} from './workloads';

/** What the child tells its parent once it serves: message sizes (unframed) by call type name. */
export interface FakeReadyMessage {
  readonly type: 'ready';
  readonly responseBytes: Readonly<Record<string, number>>;
}

async function main(): Promise<void> {
  const socketPath = process.argv[2];
  if (socketPath === undefined) throw new Error('usage: fake-runtime-process SOCKET');
  const fake = new FakeRuntime(socketPath);
  const version = versionResponse();
  const list = listContainersResponse();
  const largeList = largeListContainersResponse();
  const largeRequest = largeListContainersRequest();
  const sandbox = runPodSandboxResponse();
  const created = createContainerResponse();
  fake
    .on('Version', { respond: version })
    .on('ListContainers', { respond: (call) => (call.requestBytes.equals(largeRequest) ? largeList : list) })
    .on('RunPodSandbox', { respond: sandbox })
    .on('CreateContainer', { respond: created })
    .on('StartContainer', { respond: Buffer.alloc(0) });
  await fake.start();
  // The fake records every call for tests; over a bench run that would grow by millions.
  setInterval(() => {
    fake.calls.length = 0;
  }, 200).unref();
  const stop = (): void => {
    void fake.stop().finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // The parent is gone (killed, crashed): do not outlive it.
  process.on('disconnect', stop);
  const responseBytes = {
    Version: version.length,
    ListContainers: list.length,
    ListContainers10k: largeList.length,
    RunPodSandbox: sandbox.length,
    CreateContainer: created.length,
    StartContainer: 0,
  };
  const ready: FakeReadyMessage = { type: 'ready', responseBytes };
  process.send?.(ready);
}

main().catch((err: unknown) => {
  process.stderr.write(`fake runtime: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
