/**
 * Child-process entry: the in-process fake runtime on its own, so its CPU is not counted with the proxy's or
 * the load generator's. Started by the bench with an IPC channel: `node fake-runtime-process.js SOCKET`.
 */
import { encodeMessage } from '../src/proxy/codec';
import { FakeRuntime } from '../test/support/fake-runtime';
import { listContainersResponse } from './workloads';

/** What the child tells its parent once it serves; sizes are of the unframed messages. */
export interface FakeReadyMessage {
  readonly type: 'ready';
  readonly responseBytes: Readonly<Record<string, number>>;
}

async function main(): Promise<void> {
  const socketPath = process.argv[2];
  if (socketPath === undefined) throw new Error('usage: fake-runtime-process SOCKET');
  const fake = new FakeRuntime(socketPath);
  const version = encodeMessage('runtime.v1.VersionResponse', {
    version: '0.1.0',
    runtime_name: 'fake-runtime',
    runtime_version: '1.0.0',
    runtime_api_version: 'v1',
  });
  const list = listContainersResponse();
  fake.on('Version', { respond: version }).on('ListContainers', { respond: list });
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
  const ready: FakeReadyMessage = { type: 'ready', responseBytes: { Version: version.length, ListContainers: list.length } };
  process.send?.(ready);
}

main().catch((err: unknown) => {
  process.stderr.write(`fake runtime: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
