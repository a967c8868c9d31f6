/** What the reference rows' processes share: their command line, and serving until the bench goes. */
import { rmSync } from 'node:fs';
import type * as net from 'node:net';

/**
 * Reads `LISTEN_SOCKET RUNTIME_SOCKET` from the command line, listens with the server `create` builds for the
 * runtime socket, and exits when told to or when the bench that forked it goes away.
 */
export function serveReference(name: string, create: (runtimeSocket: string) => net.Server): void {
  const [listen, runtimeSocket] = process.argv.slice(2);
  if (listen === undefined || runtimeSocket === undefined) throw new Error(`usage: ${name} LISTEN_SOCKET RUNTIME_SOCKET`);
  rmSync(listen, { force: true });
  const server = create(runtimeSocket);
  server.listen(listen);
  const stop = (): void => {
    server.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('disconnect', stop);
}
