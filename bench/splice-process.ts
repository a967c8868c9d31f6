/**
 * Reference row `splice`: the floor for any proxy written for Node. Each client connection gets one connection
 * to the runtime and bytes are piped both ways; nothing is parsed, so it can neither route nor intercept.
 * `node splice-process.js LISTEN_SOCKET RUNTIME_SOCKET`, forked by the bench (it exits when the bench goes).
 */
import * as net from 'node:net';
import { serveReference } from './reference-process';

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

serveReference('splice-process', (runtimeSocket) => net.createServer((client) => splice(client, runtimeSocket)));
