/**
 * Reference row `splice`: the floor for any proxy written for Node. Each client connection gets one connection
 * to the runtime and bytes are piped both ways; nothing is parsed, so it can neither route nor intercept.
 * `node splice-process.js LISTEN_SOCKET RUNTIME_SOCKET`, forked by the bench (it exits when the bench goes).
 */
import { rmSync } from 'node:fs';
import * as net from 'node:net';

function splice(client: net.Socket, runtimeSocket: string): void {
  const runtime = net.connect(runtimeSocket);
  client.pipe(runtime);
  runtime.pipe(client);
  const destroyBoth = (): void => {
    client.destroy();
    runtime.destroy();
  };
  client.on('error', destroyBoth);
  runtime.on('error', destroyBoth);
  // A side that closed cleanly has had its end passed on by pipe(); one that broke takes the other with it.
  client.on('close', (hadError) => {
    if (hadError) runtime.destroy();
    else if (!runtime.writableEnded) runtime.end();
  });
  runtime.on('close', (hadError) => {
    if (hadError) client.destroy();
    else if (!client.writableEnded) client.end();
  });
}

function main(): void {
  const [listen, runtimeSocket] = process.argv.slice(2);
  if (listen === undefined || runtimeSocket === undefined) throw new Error('usage: splice-process LISTEN_SOCKET RUNTIME_SOCKET');
  rmSync(listen, { force: true });
  const server = net.createServer((client) => splice(client, runtimeSocket));
  server.listen(listen);
  const stop = (): void => {
    server.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('disconnect', stop);
}

main();
