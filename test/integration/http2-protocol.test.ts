import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { encodeMessage } from '../../src/messages/codec';
import { CONNECTION_PREFACE, ErrorCode, Flag, FrameType, MAX_WINDOW, Setting } from '../../src/proxy/http2/frames';
import { settingsFrame } from '../../src/proxy/http2/frame-writers';
import { sample } from '../support/metric-samples';
import { startTestProxy, type TestProxy } from '../support/proxy-harness';
import { RawH2Client, u32 } from '../support/raw-h2';
import { waitFor } from '../support/wait';

const VERSION = '/runtime.v1.RuntimeService/Version';
const versionRequest = encodeMessage('runtime.v1.VersionRequest', { version: 'v1' });

describe('HTTP/2 protocol errors from a client', () => {
  let proxy: TestProxy;
  let registry: Registry;
  let raw: RawH2Client;
  beforeEach(async () => {
    registry = new Registry();
    proxy = await startTestProxy({ registry });
    raw = new RawH2Client(proxy.socketPath);
  });
  afterEach(async () => {
    raw.close();
    await proxy.close();
  });

  /** The proxy keeps serving others whatever one connection did. */
  async function othersStillServed(): Promise<void> {
    const result = await proxy.client().unary(VERSION, versionRequest);
    expect(result.status.code).toBe(grpc.status.OK);
  }

  const connectionErrors: [string, (c: RawH2Client) => Buffer[], number][] = [
    ['DATA on stream 0', (c) => [c.frame(FrameType.DATA, 0, 0, Buffer.from('x'))], ErrorCode.PROTOCOL_ERROR],
    ['DATA on a stream never opened', (c) => [c.frame(FrameType.DATA, 0, 7, Buffer.from('x'))], ErrorCode.PROTOCOL_ERROR],
    ['HEADERS with an even stream id', (c) => [c.requestHeaders(2, VERSION)], ErrorCode.PROTOCOL_ERROR],
    [
      'a stream id lower than one already used',
      (c) => [c.requestHeaders(5, VERSION), c.requestHeaders(3, VERSION)],
      ErrorCode.PROTOCOL_ERROR,
    ],
    [
      'CONTINUATION without HEADERS',
      (c) => [c.frame(FrameType.CONTINUATION, Flag.END_HEADERS, 1, Buffer.alloc(0))],
      ErrorCode.PROTOCOL_ERROR,
    ],
    [
      'a header block interrupted by another frame',
      (c) => [c.requestHeaders(1, VERSION, [], 0), c.frame(FrameType.PING, 0, 0, Buffer.alloc(8))],
      ErrorCode.PROTOCOL_ERROR,
    ],
    [
      'a frame larger than the maximum frame size',
      (c) => [c.frame(FrameType.DATA, 0, 1, Buffer.alloc(20_000))],
      ErrorCode.FRAME_SIZE_ERROR,
    ],
    [
      'SETTINGS with a payload not a multiple of 6',
      (c) => [c.frame(FrameType.SETTINGS, 0, 0, Buffer.alloc(5))],
      ErrorCode.FRAME_SIZE_ERROR,
    ],
    ['SETTINGS on a stream', (c) => [c.frame(FrameType.SETTINGS, 0, 1, Buffer.alloc(0))], ErrorCode.PROTOCOL_ERROR],
    ['PING of the wrong size', (c) => [c.frame(FrameType.PING, 0, 0, Buffer.alloc(7))], ErrorCode.FRAME_SIZE_ERROR],
    [
      'PUSH_PROMISE from a client',
      (c) => [c.frame(FrameType.PUSH_PROMISE, Flag.END_HEADERS, 1, Buffer.alloc(4))],
      ErrorCode.PROTOCOL_ERROR,
    ],
    ['WINDOW_UPDATE of 0 on the connection', (c) => [c.frame(FrameType.WINDOW_UPDATE, 0, 0, u32(0))], ErrorCode.PROTOCOL_ERROR],
    ['a connection window overflow', (c) => [c.frame(FrameType.WINDOW_UPDATE, 0, 0, u32(MAX_WINDOW))], ErrorCode.FLOW_CONTROL_ERROR],
    ['RST_STREAM on a stream never opened', (c) => [c.frame(FrameType.RST_STREAM, 0, 9, u32(ErrorCode.CANCEL))], ErrorCode.PROTOCOL_ERROR],
    [
      'a header block that does not decode',
      (c) => [c.frame(FrameType.HEADERS, Flag.END_HEADERS, 1, Buffer.from([0x80]))],
      ErrorCode.COMPRESSION_ERROR,
    ],
    ['an initial window above 2^31-1', () => [settingsFrame([[Setting.INITIAL_WINDOW_SIZE, 2 ** 31]])], ErrorCode.FLOW_CONTROL_ERROR],
    ['a maximum frame size out of range', () => [settingsFrame([[Setting.MAX_FRAME_SIZE, 100]])], ErrorCode.PROTOCOL_ERROR],
  ];

  test.each(connectionErrors)('%s is a connection error', async (_name, frames, code) => {
    raw.handshake().write(...frames(raw));
    expect((await raw.goaway()).code).toBe(code);
    await raw.closed;
    expect(await sample(registry, 'cri_proxy_protocol_errors_total', { side: 'client', scope: 'connection' })).toBe(1);
    await othersStillServed();
  });

  test('a bad preface closes the connection', async () => {
    raw.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    expect((await raw.goaway()).code).toBe(ErrorCode.PROTOCOL_ERROR);
    await raw.closed;
  });

  test('a first frame other than SETTINGS closes the connection', async () => {
    raw.write(CONNECTION_PREFACE, raw.frame(FrameType.PING, 0, 0, Buffer.alloc(8)));
    expect((await raw.goaway()).code).toBe(ErrorCode.PROTOCOL_ERROR);
  });

  test('WINDOW_UPDATE of 0 on a stream resets only that stream', async () => {
    proxy.runtime.on('ExecSync', { delayMs: Infinity });
    raw.handshake().write(raw.requestHeaders(1, '/runtime.v1.RuntimeService/ExecSync'), raw.frame(FrameType.WINDOW_UPDATE, 0, 1, u32(0)));
    expect(await raw.reset(1)).toBe(ErrorCode.PROTOCOL_ERROR);
    // The connection goes on: a call on it still works.
    raw.write(raw.requestHeaders(3, VERSION), raw.message(3, versionRequest));
    expect(await raw.status(3)).toBe('0');
    expect(await sample(registry, 'cri_proxy_protocol_errors_total', { side: 'client', scope: 'stream' })).toBe(1);
  });

  test('a stream window overflow resets only that stream', async () => {
    proxy.runtime.on('ExecSync', { delayMs: Infinity });
    raw
      .handshake()
      .write(raw.requestHeaders(1, '/runtime.v1.RuntimeService/ExecSync'), raw.frame(FrameType.WINDOW_UPDATE, 0, 1, u32(MAX_WINDOW)));
    expect(await raw.reset(1)).toBe(ErrorCode.FLOW_CONTROL_ERROR);
    raw.write(raw.requestHeaders(3, VERSION), raw.message(3, versionRequest));
    expect(await raw.status(3)).toBe('0');
    // The reset call never runs on (it was cancelled before or at the runtime).
    expect(proxy.runtime.calls.filter((c) => c.name === 'ExecSync' && !c.cancelled)).toHaveLength(0);
  });

  test('DATA after the end of a stream resets it with STREAM_CLOSED', async () => {
    proxy.runtime.on('ExecSync', { delayMs: Infinity });
    raw.handshake().write(raw.requestHeaders(1, '/runtime.v1.RuntimeService/ExecSync'), raw.message(1, Buffer.alloc(0), true));
    await waitForCall(proxy, 'ExecSync');
    raw.write(raw.message(1, Buffer.alloc(0), false));
    expect(await raw.reset(1)).toBe(ErrorCode.STREAM_CLOSED);
    await waitForCancel(proxy, 'ExecSync');
  });

  test('an upper-case header name is a malformed request (PROTOCOL_ERROR on the stream)', async () => {
    raw
      .handshake()
      .write(raw.frame(FrameType.HEADERS, Flag.END_HEADERS, 1, raw.headerBlock([':method', 'POST', ':path', VERSION, 'X-Upper', 'v'])));
    expect(await raw.reset(1)).toBe(ErrorCode.PROTOCOL_ERROR);
    expect(proxy.runtime.calls).toHaveLength(0);
  });

  test('a client reset cancels the runtime call', async () => {
    proxy.runtime.on('ExecSync', { delayMs: Infinity });
    raw.handshake().write(raw.requestHeaders(1, '/runtime.v1.RuntimeService/ExecSync'), raw.message(1, Buffer.alloc(0)));
    await waitForCall(proxy, 'ExecSync');
    raw.write(raw.frame(FrameType.RST_STREAM, 0, 1, u32(ErrorCode.CANCEL)));
    await waitForCancel(proxy, 'ExecSync');
  });

  test('padded HEADERS and DATA are read without their padding', async () => {
    const block = raw.headerBlock([
      ':method',
      'POST',
      ':scheme',
      'http',
      ':path',
      VERSION,
      ':authority',
      'localhost',
      'content-type',
      'application/grpc',
    ]);
    const headers = Buffer.concat([Buffer.from([3]), Buffer.alloc(5), block, Buffer.alloc(3)]);
    const body = Buffer.concat([Buffer.from([0, 0, 0, 0, versionRequest.length]), versionRequest]);
    const data = Buffer.concat([Buffer.from([4]), body, Buffer.alloc(4)]);
    raw
      .handshake()
      .write(
        raw.frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.PADDED | Flag.PRIORITY, 1, headers),
        raw.frame(FrameType.DATA, Flag.END_STREAM | Flag.PADDED, 1, data),
      );
    expect(await raw.status(1)).toBe('0');
    expect(proxy.runtime.lastCall('Version')?.requestBytes.equals(versionRequest)).toBe(true);
  });

  test('PING is answered with the same payload', async () => {
    raw.handshake().write(raw.frame(FrameType.PING, 0, 0, Buffer.from('12345678')));
    const pong = await raw.next((f) => f.type === FrameType.PING);
    expect(pong.flags & Flag.ACK).toBe(Flag.ACK);
    expect(pong.payload.toString()).toBe('12345678');
  });
});

function waitForCall(proxy: TestProxy, method: string): Promise<void> {
  return waitFor(() => proxy.runtime.lastCall(method) !== undefined);
}

function waitForCancel(proxy: TestProxy, method: string): Promise<void> {
  return waitFor(() => proxy.runtime.lastCall(method)?.cancelled === true);
}
