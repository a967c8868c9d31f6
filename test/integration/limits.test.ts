import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { encodeMessage } from '../../src/messages/codec';
import { CONNECTION_PREFACE, ErrorCode, Flag, FrameType, Setting } from '../../src/proxy/http2/frames';
import { settingsFrame } from '../../src/proxy/http2/frame-writers';
import type { ChainEntry } from '../../src/chain/chain';
import type { Limits } from '../../src/proxy/limits';
import { sample } from '../support/metric-samples';
import { readsRequests } from '../support/calls';
import { startTestProxy, type SocketMode, type TestProxy } from '../support/proxy-harness';
import { RawH2Client } from '../support/raw-h2';
import { waitFor } from '../support/wait';
import { PROXY_ERROR_TRAILER } from '../../src/proxy/grpc-status';

const VERSION = '/runtime.v1.RuntimeService/Version';
const EXEC_SYNC = '/runtime.v1.RuntimeService/ExecSync';
const versionRequest = encodeMessage('runtime.v1.VersionRequest', { version: 'v1' });

// Both ways the proxy gets its socket: bound from `listen`, or passed in by systemd (socket activation).
describe.each<SocketMode>(['path', 'inherited'])('client connection limits (socket: %s)', (socket) => {
  let proxy: TestProxy;
  let registry: Registry;
  const raws: RawH2Client[] = [];
  afterEach(async () => {
    for (const r of raws.splice(0)) r.close();
    await proxy.close();
  });

  async function start(limits: Partial<Limits>, entries: readonly ChainEntry[] = []): Promise<void> {
    registry = new Registry();
    proxy = await startTestProxy({ registry, limits, entries, socket });
  }

  function raw(): RawH2Client {
    const client = new RawH2Client(proxy.socketPath);
    raws.push(client);
    return client;
  }

  const triggered = (limit: string): Promise<number | undefined> => sample(registry, 'cri_proxy_limit_exceeded_total', { limit });

  async function neighbourServed(): Promise<void> {
    const result = await proxy.client().unary(VERSION, versionRequest);
    expect(result.status.code).toBe(grpc.status.OK);
  }

  test('a connection that never completes its preface is closed after the handshake timeout', async () => {
    await start({ handshakeTimeoutMs: 200 });
    const slow = raw().write(CONNECTION_PREFACE.subarray(0, 10));
    await neighbourServed();
    await slow.closed;
    expect(await triggered('handshakeTimeout')).toBe(1);
    await neighbourServed();
  });

  test('too many bytes before the handshake completes close the connection', async () => {
    await start({ handshakeMaxBytes: 100 });
    const settings = Array.from({ length: 40 }, (_, i) => [0x100 + i, 0] as const);
    const noisy = raw().write(CONNECTION_PREFACE, settingsFrame(settings));
    await noisy.closed;
    expect(await triggered('handshakeBytes')).toBe(1);
    await neighbourServed();
  });

  test('at the connection limit the longest-idle connection makes room', async () => {
    await start({ maxConnections: 2 });
    const first = raw().handshake();
    await first.next((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) !== 0);
    const second = raw().handshake();
    await second.next((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) !== 0);
    await waitFor(() => proxy.server.connectionCount === 2);
    await neighbourServed();
    expect((await first.goaway()).code).toBe(ErrorCode.NO_ERROR);
    expect(await triggered('connections')).toBe(1);
  });

  test('at the connection limit with every connection busy, a new one is refused', async () => {
    await start({ maxConnections: 1 });
    proxy.runtime.on('ExecSync', { delayMs: Infinity });
    const busy = raw().handshake();
    busy.write(busy.requestHeaders(1, EXEC_SYNC), busy.message(1, Buffer.alloc(0)));
    await waitFor(() => proxy.runtime.lastCall('ExecSync') !== undefined);
    const refused = raw().handshake();
    await refused.closed;
    expect(await triggered('connections')).toBe(1);
    expect(proxy.runtime.lastCall('ExecSync')?.cancelled).toBe(false);
  });

  test('an idle connection is closed with GOAWAY after the idle timeout; a busy one is not', async () => {
    await start({ idleTimeoutMs: 100 });
    proxy.runtime.on('ExecSync', { delayMs: Infinity });
    const idle = raw().handshake();
    const busy = raw().handshake();
    busy.write(busy.requestHeaders(1, EXEC_SYNC), busy.message(1, Buffer.alloc(0)));
    expect((await idle.goaway()).code).toBe(ErrorCode.NO_ERROR);
    await idle.closed;
    expect(await triggered('idleTimeout')).toBe(1);
    expect(busy.frames.some((f) => f.type === FrameType.GOAWAY)).toBe(false);
  });

  test('calls beyond the concurrent-stream limit are refused with REFUSED_STREAM', async () => {
    await start({ maxConcurrentStreams: 2 });
    proxy.runtime.on('ExecSync', { delayMs: Infinity });
    const client = raw().handshake();
    const settings = await client.next((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) === 0);
    const announced = new Map<number, number>();
    for (let at = 0; at < settings.payload.length; at += 6)
      announced.set(settings.payload.readUInt16BE(at), settings.payload.readUInt32BE(at + 2));
    expect(announced.get(Setting.MAX_CONCURRENT_STREAMS)).toBe(2);
    for (const id of [1, 3, 5]) client.write(client.requestHeaders(id, EXEC_SYNC), client.message(id, Buffer.alloc(0)));
    expect(await client.reset(5)).toBe(ErrorCode.REFUSED_STREAM);
    expect(await triggered('concurrentStreams')).toBe(1);
    await neighbourServed();
  });

  test('a header list over the limit gets RESOURCE_EXHAUSTED and the connection goes on', async () => {
    await start({ maxHeaderListBytes: 4096 });
    const client = raw().handshake();
    client.write(client.requestHeaders(1, VERSION, ['x-big', 'y'.repeat(5000)]), client.message(1, versionRequest));
    expect(await client.status(1)).toBe(String(grpc.status.RESOURCE_EXHAUSTED));
    expect(await triggered('headerListBytes')).toBe(1);
    client.write(client.requestHeaders(3, VERSION), client.message(3, versionRequest));
    expect(await client.status(3)).toBe('0');
    expect(proxy.runtime.calls).toHaveLength(1);
  });

  test('request bytes held for interceptors are capped per connection', async () => {
    await start({ maxHeldRequestBytes: 1000 }, [readsRequests]);
    const result = await proxy.client().unary(EXEC_SYNC, Buffer.alloc(2000, 1));
    expect(result.status.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(result.status.details).toContain('maxHeldRequestBytes');
    expect(result.status.metadata.get(PROXY_ERROR_TRAILER)).toEqual(['LIMIT_EXCEEDED']);
    expect(await triggered('heldRequestBytes')).toBe(1);
    expect(proxy.runtime.lastCall('ExecSync')).toBeUndefined();
    await neighbourServed();
  });
});
