import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { encodeMessage } from '../../src/messages/codec';
import { frameMessage } from '../../src/proxy/grpc-frames';
import { ErrorCode, Flag, FrameType } from '../../src/proxy/http2/frames';
import type { CallContext } from '../../src/chain/types';
import { interceptorEntry } from '../support/calls';
import { sample } from '../support/metric-samples';
import { startTestProxy, type TestProxy } from '../support/proxy-harness';
import { RawH2Client, u32 } from '../support/raw-h2';
import { waitFor } from '../support/wait';

const VERSION = '/runtime.v1.RuntimeService/Version';
const REMOVE = '/runtime.v1.RuntimeService/RemoveContainer';
const EXEC_SYNC = '/runtime.v1.RuntimeService/ExecSync';
const versionRequest = encodeMessage('runtime.v1.VersionRequest', { version: 'v1' });
const body = frameMessage(versionRequest);
const base = [':method', 'POST', ':scheme', 'http', ':path', VERSION, ':authority', 'localhost', 'content-type', 'application/grpc'];
/** A PRIORITY frame's payload (or a HEADERS frame's priority fields): exclusive bit, dependency, weight. */
const priority = (dependsOn: number): Buffer => Buffer.concat([u32(dependsOn), Buffer.from([16])]);

describe('malformed requests are never forwarded (RFC 9113 §8.1.1)', () => {
  let proxy: TestProxy;
  let registry: Registry;
  let raw: RawH2Client;
  /** Paths the chain was asked to run: a refused request never reaches it. */
  let seenByChain: string[];
  beforeEach(async () => {
    registry = new Registry();
    seenByChain = [];
    const recorder = interceptorEntry('recorder', (ctx: CallContext, next) => {
      seenByChain.push(ctx.method.path);
      return next();
    });
    proxy = await startTestProxy({ registry, entries: [recorder] });
    raw = new RawH2Client(proxy.socketPath).handshake();
  });
  afterEach(async () => {
    raw.close();
    await proxy.close();
  });

  const streamErrors = (code: string): Promise<number | undefined> =>
    sample(registry, 'cri_proxy_protocol_errors_total', { side: 'client', scope: 'stream', code });

  /** The connection goes on after a stream error: a call on it still works. */
  async function connectionStillServes(id: number): Promise<void> {
    raw.write(raw.requestHeaders(id, VERSION), raw.message(id, versionRequest));
    expect(await raw.status(id)).toBe('0');
  }

  /**
   * Sends `fields` as a request with a body; it must be reset with PROTOCOL_ERROR and never reach the runtime. A
   * malformed header list never reaches the chain either; one found malformed by its DATA began as a call and
   * ends cancelled.
   */
  async function expectRefused(fields: readonly string[], foundBy: 'headers' | 'data' = 'headers'): Promise<void> {
    raw.write(
      raw.frame(FrameType.HEADERS, Flag.END_HEADERS, 1, raw.headerBlock(fields)),
      raw.frame(FrameType.DATA, Flag.END_STREAM, 1, body),
    );
    expect(await raw.reset(1)).toBe(ErrorCode.PROTOCOL_ERROR);
    expect(await streamErrors('PROTOCOL_ERROR')).toBe(1);
    await connectionStillServes(3);
    expect(seenByChain).toEqual(foundBy === 'headers' ? [VERSION] : [VERSION, VERSION]);
    expect(proxy.runtime.calls.map((c) => c.path)).toEqual([VERSION]);
  }

  test('a duplicated :path is refused: no runtime can run a method the chain never saw', async () => {
    await expectRefused([...base.slice(0, 6), ':path', REMOVE, ...base.slice(6)]);
    expect(proxy.runtime.lastCall('RemoveContainer')).toBeUndefined();
  });

  test.each([
    ['a duplicated :method', [...base, ':method', 'GET']],
    ['a duplicated :scheme', [':scheme', 'https', ...base]],
    ['a duplicated :authority', [':authority', 'other', ...base]],
    ['a response pseudo-header (:status)', [':status', '200', ...base]],
    ['an unknown pseudo-header', [':version', '2', ...base]],
    ['a pseudo-header after a regular field', [...base.slice(0, 4), 'x-early', '1', ...base.slice(4)]],
    ['a missing :scheme', base.filter((_f, i) => i !== 2 && i !== 3)],
    ['a missing :path', base.filter((_f, i) => i !== 4 && i !== 5)],
    ['a missing :method', base.slice(2)],
    ['connection', [...base, 'connection', 'close']],
    ['keep-alive', [...base, 'keep-alive', 'timeout=5']],
    ['proxy-connection', [...base, 'proxy-connection', 'keep-alive']],
    ['transfer-encoding', [...base, 'transfer-encoding', 'chunked']],
    ['upgrade', [...base, 'upgrade', 'h2c']],
    ['te other than trailers', [...base, 'te', 'gzip']],
    ['an upper-case field name', [...base, 'X-Upper', 'v']],
    ['a field value with a line feed', [...base, 'x-smuggle', 'a\r\nx-injected: 1']],
  ])('%s is refused with PROTOCOL_ERROR', async (_name, fields) => {
    await expectRefused(fields);
  });

  test('a content-length larger than the DATA received is refused at the end of the request', async () => {
    await expectRefused([...base, 'content-length', String(body.length + 10)], 'data');
  });

  test('DATA beyond the content-length is refused before it is forwarded', async () => {
    await expectRefused([...base, 'content-length', '3'], 'data');
  });

  test('a content-length on a request without DATA is refused', async () => {
    raw.write(raw.frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, raw.headerBlock([...base, 'content-length', '5'])));
    expect(await raw.reset(1)).toBe(ErrorCode.PROTOCOL_ERROR);
    await connectionStillServes(3);
    expect(proxy.runtime.calls).toHaveLength(1);
  });

  test('a content-length that matches the DATA is forwarded as it came', async () => {
    raw.write(
      raw.frame(FrameType.HEADERS, Flag.END_HEADERS, 1, raw.headerBlock([...base, 'content-length', String(body.length)])),
      raw.frame(FrameType.DATA, 0, 1, body.subarray(0, 4)),
      raw.frame(FrameType.DATA, Flag.END_STREAM, 1, body.subarray(4)),
    );
    expect(await raw.status(1)).toBe('0');
    expect(proxy.runtime.lastCall('Version')?.requestBytes.equals(versionRequest)).toBe(true);
  });

  test('request trailers with a pseudo-header are refused and the call never completes at the runtime', async () => {
    raw.write(
      raw.frame(FrameType.HEADERS, Flag.END_HEADERS, 1, raw.headerBlock(base)),
      raw.frame(FrameType.DATA, 0, 1, body),
      raw.frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, raw.headerBlock([':path', REMOVE])),
    );
    expect(await raw.reset(1)).toBe(ErrorCode.PROTOCOL_ERROR);
    await connectionStillServes(3);
    expect(proxy.runtime.calls.map((c) => c.path)).toEqual([VERSION]);
  });

  test('request trailers with a connection-specific field are refused', async () => {
    raw.write(
      raw.frame(FrameType.HEADERS, Flag.END_HEADERS, 1, raw.headerBlock(base)),
      raw.frame(FrameType.DATA, 0, 1, body),
      raw.frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, raw.headerBlock(['connection', 'close'])),
    );
    expect(await raw.reset(1)).toBe(ErrorCode.PROTOCOL_ERROR);
  });

  test('well-formed request trailers end the request', async () => {
    raw.write(
      raw.frame(FrameType.HEADERS, Flag.END_HEADERS, 1, raw.headerBlock(base)),
      raw.frame(FrameType.DATA, 0, 1, body),
      raw.frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, raw.headerBlock(['x-checksum', 'abc'])),
    );
    expect(await raw.status(1)).toBe('0');
  });
});

describe('streams that depend on themselves (RFC 9113 §5.3.1)', () => {
  let proxy: TestProxy;
  let registry: Registry;
  let raw: RawH2Client;
  beforeEach(async () => {
    registry = new Registry();
    proxy = await startTestProxy({ registry });
    raw = new RawH2Client(proxy.socketPath).handshake();
  });
  afterEach(async () => {
    raw.close();
    await proxy.close();
  });

  test('HEADERS whose priority names its own stream are refused with PROTOCOL_ERROR', async () => {
    const block = Buffer.concat([priority(1), raw.headerBlock(base)]);
    raw.write(raw.frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.PRIORITY, 1, block), raw.message(1, versionRequest));
    expect(await raw.reset(1)).toBe(ErrorCode.PROTOCOL_ERROR);
    // The header block was still decoded: the connection's HPACK context is intact for the next request.
    raw.write(raw.requestHeaders(3, VERSION), raw.message(3, versionRequest));
    expect(await raw.status(3)).toBe('0');
    expect(proxy.runtime.calls).toHaveLength(1);
    expect(await sample(registry, 'cri_proxy_protocol_errors_total', { side: 'client', scope: 'stream', code: 'PROTOCOL_ERROR' })).toBe(1);
  });

  test('a PRIORITY frame making an open stream depend on itself resets it and cancels its call', async () => {
    proxy.runtime.on('ExecSync', { delayMs: Infinity });
    raw.write(raw.requestHeaders(1, EXEC_SYNC), raw.message(1, Buffer.alloc(0)));
    await waitFor(() => proxy.runtime.lastCall('ExecSync') !== undefined);
    raw.write(raw.frame(FrameType.PRIORITY, 0, 1, priority(1)));
    expect(await raw.reset(1)).toBe(ErrorCode.PROTOCOL_ERROR);
    await waitFor(() => proxy.runtime.lastCall('ExecSync')?.cancelled === true);
    raw.write(raw.requestHeaders(3, VERSION), raw.message(3, versionRequest));
    expect(await raw.status(3)).toBe('0');
  });

  test('a PRIORITY frame on another stream, or on an idle one, is accepted (and ignored)', async () => {
    raw.write(raw.frame(FrameType.PRIORITY, 0, 5, priority(3)), raw.frame(FrameType.PRIORITY, 0, 1, priority(0)));
    raw.write(raw.requestHeaders(1, VERSION), raw.message(1, versionRequest));
    expect(await raw.status(1)).toBe('0');
    expect(raw.frames.some((f) => f.type === FrameType.RST_STREAM || f.type === FrameType.GOAWAY)).toBe(false);
  });
});

describe('frames on streams the client reset or closed (RFC 9113 §5.1)', () => {
  let proxy: TestProxy;
  let registry: Registry;
  let raw: RawH2Client;
  beforeEach(async () => {
    registry = new Registry();
    proxy = await startTestProxy({ registry });
    raw = new RawH2Client(proxy.socketPath).handshake();
  });
  afterEach(async () => {
    raw.close();
    await proxy.close();
  });

  /** A stream the client opened and reset while its call was still running at the runtime. */
  async function resetByClient(id: number): Promise<void> {
    proxy.runtime.on('ExecSync', { delayMs: Infinity });
    raw.write(raw.requestHeaders(id, EXEC_SYNC), raw.message(id, Buffer.alloc(0)));
    await waitFor(() => proxy.runtime.lastCall('ExecSync') !== undefined);
    raw.write(raw.frame(FrameType.RST_STREAM, 0, id, u32(ErrorCode.CANCEL)));
    await waitFor(() => proxy.runtime.lastCall('ExecSync')?.cancelled === true);
  }

  /** A call that ended on both sides: the client's END_STREAM, then the proxy's trailers. */
  async function completed(id: number): Promise<void> {
    raw.write(raw.requestHeaders(id, VERSION), raw.message(id, versionRequest));
    expect(await raw.status(id)).toBe('0');
  }

  /** A PING answered after `frames` shows every one of them was read, and answered (or not) before it. */
  async function afterAllRead(...frames: Buffer[]): Promise<void> {
    raw.write(...frames, raw.frame(FrameType.PING, 0, 0, Buffer.from('checkpnt')));
    await raw.next((f) => f.type === FrameType.PING && f.payload.toString() === 'checkpnt');
  }

  test.each([
    ['DATA', (c: RawH2Client) => c.frame(FrameType.DATA, 0, 1, body)],
    ['HEADERS', (c: RawH2Client) => c.frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, c.headerBlock(['x-late', '1']))],
    ['WINDOW_UPDATE', (c: RawH2Client) => c.frame(FrameType.WINDOW_UPDATE, 0, 1, u32(100))],
  ])('%s after the client reset the stream is a stream error STREAM_CLOSED', async (_name, late) => {
    await resetByClient(1);
    raw.write(late(raw));
    expect(await raw.reset(1)).toBe(ErrorCode.STREAM_CLOSED);
    await completed(3);
    expect(raw.frames.some((f) => f.type === FrameType.GOAWAY)).toBe(false);
    expect(await sample(registry, 'cri_proxy_protocol_errors_total', { side: 'client', scope: 'stream', code: 'STREAM_CLOSED' })).toBe(1);
  });

  test('RST_STREAM and PRIORITY after the client reset the stream are not answered', async () => {
    await resetByClient(1);
    await afterAllRead(raw.frame(FrameType.RST_STREAM, 0, 1, u32(ErrorCode.CANCEL)), raw.frame(FrameType.PRIORITY, 0, 1, priority(0)));
    expect(raw.frames.some((f) => f.type === FrameType.RST_STREAM || f.type === FrameType.GOAWAY)).toBe(false);
  });

  test.each([
    ['DATA', (c: RawH2Client) => c.frame(FrameType.DATA, 0, 1, body)],
    ['HEADERS', (c: RawH2Client) => c.frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, c.headerBlock(['x-late', '1']))],
  ])('%s on a stream both sides ended is a connection error STREAM_CLOSED', async (_name, late) => {
    await completed(1);
    raw.write(late(raw));
    expect((await raw.goaway()).code).toBe(ErrorCode.STREAM_CLOSED);
    await raw.closed;
    expect(await sample(registry, 'cri_proxy_protocol_errors_total', { side: 'client', scope: 'connection', code: 'STREAM_CLOSED' })).toBe(
      1,
    );
    const result = await proxy.client().unary(VERSION, versionRequest);
    expect(result.status.code).toBe(grpc.status.OK);
  });

  test('WINDOW_UPDATE and RST_STREAM on a stream both sides ended may cross the end, and are ignored', async () => {
    await completed(1);
    await afterAllRead(raw.frame(FrameType.WINDOW_UPDATE, 0, 1, u32(100)), raw.frame(FrameType.RST_STREAM, 0, 1, u32(ErrorCode.CANCEL)));
    expect(raw.frames.some((f) => f.type === FrameType.RST_STREAM || f.type === FrameType.GOAWAY)).toBe(false);
    await completed(3);
  });

  test('HEADERS on a stream still open after the client ended it is a stream error STREAM_CLOSED', async () => {
    proxy.runtime.on('ExecSync', { delayMs: Infinity });
    raw.write(raw.requestHeaders(1, EXEC_SYNC), raw.message(1, Buffer.alloc(0)));
    await waitFor(() => proxy.runtime.lastCall('ExecSync') !== undefined);
    raw.write(raw.frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, raw.headerBlock(['x-late', '1'])));
    expect(await raw.reset(1)).toBe(ErrorCode.STREAM_CLOSED);
    await waitFor(() => proxy.runtime.lastCall('ExecSync')?.cancelled === true);
    await completed(3);
  });

  test('frames the client sent before it saw the proxy reset a stream are dropped', async () => {
    // Malformed, so reset by the proxy; its DATA, trailers and window updates were already on their way.
    raw.write(raw.frame(FrameType.HEADERS, Flag.END_HEADERS, 1, raw.headerBlock([...base, 'connection', 'close'])));
    expect(await raw.reset(1)).toBe(ErrorCode.PROTOCOL_ERROR);
    await afterAllRead(
      raw.frame(FrameType.DATA, 0, 1, body),
      raw.frame(FrameType.WINDOW_UPDATE, 0, 1, u32(100)),
      raw.frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, raw.headerBlock(['x-late', '1'])),
    );
    expect(raw.frames.filter((f) => f.type === FrameType.RST_STREAM)).toHaveLength(1);
    expect(raw.frames.some((f) => f.type === FrameType.GOAWAY)).toBe(false);
    await completed(3);
  });
});
