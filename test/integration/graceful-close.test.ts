/** How the proxy ends its client connections on stop: HTTP/2's two-step GOAWAY, calls in flight finished. */
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { startTestProxy, type TestProxy } from '../support/proxy-harness';
import { waitFor } from '../support/wait';

describe('graceful close', () => {
  let proxy: TestProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });

  test('announces GOAWAY for every stream id, then the last one it took, and finishes the call in flight', async () => {
    const running = await startTestProxy();
    proxy = running;
    running.runtime.on('StopContainer', { delayMs: 300 });
    const session = http2.connect('http://localhost', { createConnection: () => net.connect(running.socketPath) });
    const goaways: { code: number; lastStreamID: number }[] = [];
    session.on('goaway', (code: number, lastStreamID: number) => goaways.push({ code, lastStreamID }));
    session.on('error', () => undefined);
    const stream = session.request({
      ':method': 'POST',
      ':path': '/runtime.v1.RuntimeService/StopContainer',
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    stream.end(Buffer.from([0, 0, 0, 0, 0]));
    let trailers: http2.IncomingHttpHeaders | undefined;
    stream.on('trailers', (t: http2.IncomingHttpHeaders) => {
      trailers = t;
    });
    stream.resume();
    const streamClosed = new Promise<void>((resolve) => stream.once('close', resolve));
    await waitFor(() => running.runtime.lastCall('StopContainer') !== undefined);

    await running.server.close(5000);
    await streamClosed;
    expect(trailers?.['grpc-status']).toBe('0');
    // First "every stream you sent is still taken", then the id of the last one taken (our only stream, 1).
    expect(goaways[0]).toEqual({ code: http2.constants.NGHTTP2_NO_ERROR, lastStreamID: 2 ** 31 - 1 });
    expect(goaways.slice(1)).not.toHaveLength(0);
    for (const later of goaways.slice(1)) expect(later).toEqual({ code: http2.constants.NGHTTP2_NO_ERROR, lastStreamID: 1 });
    session.destroy();
  });
});
