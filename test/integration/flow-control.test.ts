import * as grpc from '@grpc/grpc-js';
import { encodeMessage } from '../../src/messages/codec';
import { Flag, FrameType } from '../../src/proxy/http2/frames';
import { readsRequests } from '../support/calls';
import { startTestProxy, type TestProxy } from '../support/proxy-harness';
import { RawH2Client } from '../support/raw-h2';

const MIB = 1024 * 1024;
const SMALL = { streamWindowBytes: 65_535, connectionWindowBytes: 65_535 };
const SMALL_UPSTREAM = { streamWindow: 65_535, connectionWindow: 65_535 };

describe('flow control end to end', () => {
  let proxy: TestProxy;
  afterEach(async () => {
    await proxy.close();
  });

  test.each([
    ['streamed through', []],
    ['read by an interceptor first', [readsRequests]],
  ] as const)('a 16 MiB request through 64 KiB windows on both sides arrives whole (%s)', async (_name, entries) => {
    proxy = await startTestProxy({ maxMessageBytes: 17 * MIB, limits: SMALL, upstreamSettings: SMALL_UPSTREAM, entries });
    const request = Buffer.alloc(16 * MIB);
    for (let i = 0; i < request.length; i += 4096) request.writeUInt32BE(i, i);
    const result = await proxy.client().unary('/runtime.v1.RuntimeService/UpdateContainerResources', request);
    expect(result.status.code).toBe(grpc.status.OK);
    expect(proxy.runtime.lastCall('UpdateContainerResources')?.requestBytes.equals(request)).toBe(true);
  });

  test('a 16 MiB response through 64 KiB windows on both sides arrives whole', async () => {
    proxy = await startTestProxy({ maxMessageBytes: 17 * MIB, limits: SMALL, upstreamSettings: SMALL_UPSTREAM });
    const reply = Buffer.alloc(16 * MIB);
    for (let i = 0; i < reply.length; i += 4096) reply.writeUInt32BE(i, i);
    proxy.runtime.on('ListContainers', { respond: reply });
    const result = await proxy.client().unary('/runtime.v1.RuntimeService/ListContainers', Buffer.alloc(0));
    expect(result.status.code).toBe(grpc.status.OK);
    expect(result.response?.equals(reply)).toBe(true);
  });

  test('a client that stops reading a stream holds the runtime back at a few windows', async () => {
    proxy = await startTestProxy({ limits: SMALL, upstreamSettings: SMALL_UPSTREAM });
    const event = Buffer.alloc(1000, 1);
    let produced = 0;
    proxy.runtime.on('GetContainerEvents', {
      stream: function* () {
        for (; produced < 100_000; produced++) yield event;
      },
    });
    const raw = new RawH2Client(proxy.socketPath);
    // A client with a 64 KiB window that never credits it.
    raw.handshake().write(raw.requestHeaders(1, '/runtime.v1.RuntimeService/GetContainerEvents'), raw.message(1, Buffer.alloc(0)));
    await raw.next((f) => f.type === FrameType.DATA);
    // Wait until the runtime is held back: it stops producing while nothing more reaches the client.
    let before = -1;
    while (produced !== before) {
      before = produced;
      await new Promise((resolve) => setImmediate(resolve));
      await proxy.client().unary('/runtime.v1.RuntimeService/Version', Buffer.alloc(0));
    }
    const received = raw.frames.filter((f) => f.type === FrameType.DATA).reduce((n, f) => n + f.payload.length, 0);
    expect(received).toBeLessThanOrEqual(65_535);
    // What the runtime got out is bounded by the windows on the way (proxy's, runtime's socket buffers), not the stream.
    expect(produced * 1005).toBeLessThan(8 * MIB);
    raw.close();
  });
});

describe('clients that wait for the server first', () => {
  let proxy: TestProxy;
  afterEach(async () => {
    await proxy.close();
  });

  test('a gRPC-Go-like client sending the socket path as :authority is served', async () => {
    proxy = await startTestProxy();
    const raw = new RawH2Client(proxy.socketPath);
    // gRPC-Go sends nothing until the server's SETTINGS arrive.
    await raw.next((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) === 0);
    raw.handshake();
    const request = encodeMessage('runtime.v1.VersionRequest', { version: 'v1' });
    for (const id of [1, 3, 5]) {
      raw.write(
        raw.frame(
          FrameType.HEADERS,
          Flag.END_HEADERS,
          id,
          raw.headerBlock([
            ':method',
            'POST',
            ':scheme',
            'http',
            ':path',
            '/runtime.v1.RuntimeService/Version',
            ':authority',
            proxy.socketPath,
            'content-type',
            'application/grpc',
            'user-agent',
            'grpc-go/1.59.0',
            'te',
            'trailers',
          ]),
        ),
        raw.message(id, request),
      );
      expect(await raw.status(id)).toBe('0');
    }
    expect(proxy.runtime.calls).toHaveLength(3);
    raw.close();
  });
});
