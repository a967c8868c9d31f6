import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { encodeMessage } from '../../src/messages/codec';
import { ErrorCode, Flag, FrameType, MAX_WINDOW, Setting } from '../../src/proxy/http2/frames';
import { settingsFrame } from '../../src/proxy/http2/frame-writers';
import type { Limits } from '../../src/proxy/limits';
import { sample } from '../support/metric-samples';
import { startTestProxy, type TestProxy } from '../support/proxy-harness';
import { RawH2Client, u32 } from '../support/raw-h2';
import { waitFor } from '../support/wait';

// Floods move megabytes through the proxy: slow on a busy machine, bounded in work (no timing is asserted).
jest.setTimeout(120_000);

const MiB = 1024 * 1024;
const VERSION = '/runtime.v1.RuntimeService/Version';
const LIST_CONTAINERS = '/runtime.v1.RuntimeService/ListContainers';
const EXEC_SYNC = '/runtime.v1.RuntimeService/ExecSync';
const versionRequest = encodeMessage('runtime.v1.VersionRequest', { version: 'v1' });
/** What ListContainers answers in these tests: large enough to fill a runtime stream's window twice. */
const LARGE_RESPONSE = Buffer.alloc(2 * MiB, 7);
/**
 * How much the whole test process (proxy, fake runtime and test code together) may grow under any one flood. Generous
 * on purpose (garbage collection runs when it likes); before the limits, 100 MB of empty CONTINUATION frames alone
 * grew the proxy by 1.5 GB. The tighter bound each test checks is the proxy's own account of what it holds.
 */
const RSS_GROWTH_BOUND = 256 * MiB;

describe('HTTP/2 floods are bounded, and a well-behaved client alongside is served throughout', () => {
  let proxy: TestProxy;
  let registry: Registry;
  const raws: RawH2Client[] = [];
  afterEach(async () => {
    for (const r of raws.splice(0)) r.close();
    await proxy.close();
  });

  async function start(limits: Partial<Limits> = {}): Promise<void> {
    registry = new Registry();
    proxy = await startTestProxy({ registry, limits });
    proxy.runtime.on('ListContainers', { respond: LARGE_RESPONSE });
    // Warm up (first-call costs are not the flood's).
    await neighbourCall();
  }

  /** A hand-driven client, once its handshake is over (so no SETTINGS acknowledgement cuts into what it sends). */
  async function attacker(settings: readonly (readonly [number, number])[] = []): Promise<RawH2Client> {
    const client = new RawH2Client(proxy.socketPath).handshake(settings);
    raws.push(client);
    await client.next((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) === 0);
    return client;
  }

  const triggered = (limit: string): Promise<number | undefined> => sample(registry, 'cri_proxy_limit_exceeded_total', { limit });

  /** One call of the well-behaved client, on its own connection: it must succeed, whatever the flood does. */
  async function neighbourCall(path = VERSION): Promise<void> {
    const result = await proxy.client().unary(path, path === VERSION ? versionRequest : Buffer.alloc(0));
    expect(result.status.code).toBe(grpc.status.OK);
    if (path === LIST_CONTAINERS) expect(result.response?.length).toBe(LARGE_RESPONSE.length);
  }

  /** Samples what the proxy holds for its client connections every millisecond or so; `stop` gives the most seen. */
  function heldSampler(): { stop(): number } {
    let most = 0;
    const timer = setInterval(() => (most = Math.max(most, proxy.server.bytesHeld)), 1);
    return {
      stop: () => {
        clearInterval(timer);
        return Math.max(most, proxy.server.bytesHeld);
      },
    };
  }

  interface FloodResult {
    /** The most the proxy held for its client connections, sampled all along. */
    readonly maxHeld: number;
    readonly rssGrowth: number;
  }

  /**
   * Runs the flood in rounds, a call of the well-behaved client after each (and no failure allowed), until the
   * rounds are done or the attacker's connection is gone.
   */
  async function flood(client: RawH2Client, rounds: number, round: (i: number) => void, neighbourPath = VERSION): Promise<FloodResult> {
    const baseline = process.memoryUsage().rss;
    const sampler = heldSampler();
    for (let i = 0; i < rounds && !client.socket.destroyed; i++) {
      round(i);
      await neighbourCall(neighbourPath);
    }
    await neighbourCall(neighbourPath);
    const maxHeld = sampler.stop();
    const rssGrowth = process.memoryUsage().rss - baseline;
    expect(rssGrowth).toBeLessThan(RSS_GROWTH_BOUND);
    return { maxHeld, rssGrowth };
  }

  async function endsWithCalm(client: RawH2Client, limit: string): Promise<void> {
    expect((await client.goaway()).code).toBe(ErrorCode.ENHANCE_YOUR_CALM);
    await client.closed;
    expect(await triggered(limit)).toBe(1);
  }

  test('CVE-2019-9511 data dribble: responses drained a byte at a time hold at most their streams’ windows, and other clients’ responses flow', async () => {
    await start({ maxHeldResponseBytes: 64 * MiB });
    // Twenty streams of 2 MiB answers, and no window to send them in: each holds one runtime window (1 MiB) in the
    // proxy. Together that is more than a runtime connection's whole window (16 MiB), which other clients' answers
    // still need.
    const client = await attacker([[Setting.INITIAL_WINDOW_SIZE, 0]]);
    const streams = Array.from({ length: 20 }, (_, i) => 1 + 2 * i);
    for (const id of streams) client.write(client.requestHeaders(id, LIST_CONTAINERS), client.message(id, Buffer.alloc(0)));
    await waitFor(() => proxy.server.bytesHeld >= 20 * MiB, 30_000);
    const result = await flood(
      client,
      10,
      () => {
        for (const id of [0, ...streams]) client.write(client.frame(FrameType.WINDOW_UPDATE, 0, id, u32(1)));
      },
      LIST_CONTAINERS,
    );
    // Per stream: the runtime's window (1 MiB) and the unary answer held to go out with its status (64 KiB).
    expect(result.maxHeld).toBeLessThanOrEqual(streams.length * (MiB + 64 * 1024) + 64 * 1024);
    expect(client.socket.destroyed).toBe(false);
  });

  test('CVE-2019-9512 ping flood: a client that does not read its answers stops being read', async () => {
    await start();
    const client = await attacker();
    const burst = Buffer.concat(Array.from({ length: 4096 }, () => client.frame(FrameType.PING, 0, 0, Buffer.alloc(8))));
    // The flooder never reads what the proxy answers: 120 bursts of 4,096 PINGs (8 MB), their answers as large.
    client.socket.pause();
    const result = await flood(client, 120, () => client.socket.write(burst));
    // The proxy stopped reading the flooder once a few MB of answers waited for it: its bytes back up here.
    await waitFor(() => client.socket.writableLength > 0);
    expect(result.maxHeld).toBeLessThan(5 * MiB);
  });

  test('CVE-2019-9513 resource loop: reprioritising streams in circles costs nothing (no priority tree is kept)', async () => {
    await start();
    proxy.runtime.on('ExecSync', { delayMs: Infinity });
    const client = await attacker();
    const streams = Array.from({ length: 50 }, (_, i) => 1 + 2 * i);
    for (const id of streams) client.write(client.requestHeaders(id, EXEC_SYNC), client.message(id, Buffer.alloc(0)));
    await waitFor(() => proxy.runtime.calls.filter((c) => c.name === 'ExecSync').length === streams.length);
    const shuffle = (i: number): Buffer => {
      const frames: Buffer[] = [];
      for (const [n, id] of streams.entries()) {
        // Exclusive dependencies in a ring that turns every round (never on itself), and idle streams on them.
        const on = streams[(n + 1 + (i % (streams.length - 1))) % streams.length] as number;
        frames.push(client.frame(FrameType.PRIORITY, 0, id, Buffer.concat([u32(0x80000000 | on), Buffer.from([i & 0xff])])));
        frames.push(client.frame(FrameType.PRIORITY, 0, 1001 + 2 * n, Buffer.concat([u32(id), Buffer.from([255])])));
      }
      return Buffer.concat(frames);
    };
    const result = await flood(client, 100, (i) => client.write(shuffle(i)));
    expect(result.maxHeld).toBeLessThan(MiB);
    // Nothing was refused: the streams are still open, their calls still running.
    expect(client.frames.some((f) => f.type === FrameType.GOAWAY || f.type === FrameType.RST_STREAM)).toBe(false);
    expect(proxy.runtime.calls.filter((c) => c.name === 'ExecSync' && !c.cancelled)).toHaveLength(streams.length);
  });

  test('CVE-2019-9514 reset flood: requests made only to be refused end the connection', async () => {
    await start();
    const client = await attacker();
    let id = 1;
    const result = await flood(client, 100, () => {
      for (let n = 0; n < 50; n++, id += 2)
        client.write(client.requestHeaders(id, VERSION, ['X-Invalid', '1']), client.message(id, versionRequest));
    });
    await endsWithCalm(client, 'resetStreams');
    expect(result.maxHeld).toBeLessThan(MiB);
    expect(proxy.runtime.calls.filter((c) => c.metadata['x-invalid'] !== undefined)).toHaveLength(0);
  });

  test('CVE-2019-9515 settings flood: too many entries end the connection', async () => {
    await start();
    const client = await attacker();
    client.write(settingsFrame(Array.from({ length: 33 }, () => [Setting.MAX_CONCURRENT_STREAMS, 100] as const)));
    await endsWithCalm(client, 'settingsEntries');
    await neighbourCall();
  });

  test('CVE-2019-9515 settings flood: a client that does not read the acknowledgements stops being read', async () => {
    await start();
    proxy.runtime.on('ExecSync', { delayMs: Infinity });
    const client = await attacker();
    // Open streams, so every new initial window touches them all.
    for (let id = 1; id <= 99; id += 2) client.write(client.requestHeaders(id, EXEC_SYNC), client.message(id, Buffer.alloc(0)));
    const burst = Buffer.concat(
      Array.from({ length: 8192 }, (_, i) =>
        settingsFrame([
          [Setting.INITIAL_WINDOW_SIZE, 65_535 + (i % 2)],
          [Setting.MAX_FRAME_SIZE, 16_384],
        ]),
      ),
    );
    // 100 bursts of 8,192 SETTINGS frames (17 MB), their acknowledgements 7 MB.
    client.socket.pause();
    const result = await flood(client, 100, () => client.socket.write(burst));
    await waitFor(() => client.socket.writableLength > 0);
    expect(result.maxHeld).toBeLessThan(5 * MiB);
  });

  test('CVE-2019-9516 zero-length headers: empty fields are counted, never kept, and the flood ends the connection', async () => {
    await start();
    const client = await attacker();
    // A literal field with an empty name and value (3 bytes, 32 counted): 5,000 of them per request, half of them
    // added to the dynamic table.
    const empties = Buffer.concat(Array.from({ length: 5000 }, (_, i) => Buffer.from(i % 2 ? [0x00, 0x00, 0x00] : [0x40, 0x00, 0x00])));
    let id = 1;
    const result = await flood(client, 60, () => {
      for (let n = 0; n < 10; n++, id += 2) client.write(client.frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, id, empties));
    });
    await endsWithCalm(client, 'resetStreams');
    expect(await triggered('headerListBytes')).toBeGreaterThan(0);
    expect(result.maxHeld).toBeLessThan(MiB);
  });

  test('CVE-2019-9517 internal data buffering: a client with open windows that does not read is let go past its limit', async () => {
    await start();
    // Windows as large as HTTP/2 allows, a socket nobody reads, and 24 large answers asked for at once: each
    // stream's answer piles up in the proxy until its runtime window (1 MiB) is spent.
    const client = await attacker([[Setting.INITIAL_WINDOW_SIZE, MAX_WINDOW]]);
    client.write(client.frame(FrameType.WINDOW_UPDATE, 0, 0, u32(MAX_WINDOW - 65_535)));
    client.socket.pause();
    for (let id = 1; id < 48; id += 2) client.write(client.requestHeaders(id, LIST_CONTAINERS), client.message(id, Buffer.alloc(0)));
    const baseline = process.memoryUsage().rss;
    const sampler = heldSampler();
    for (let round = 0; round < 100 && (await triggered('heldResponseBytes')) === undefined; round++) {
      await neighbourCall(LIST_CONTAINERS);
    }
    const maxHeld = sampler.stop();
    expect(await triggered('heldResponseBytes')).toBe(1);
    // Its connection is gone (it reads what reached it, then the end).
    client.socket.resume();
    await client.closed;
    await neighbourCall(LIST_CONTAINERS);
    // The limit (16 MiB) and at most one relayed frame past it.
    expect(maxHeld).toBeLessThanOrEqual(16 * MiB + 16 * 1024);
    expect(process.memoryUsage().rss - baseline).toBeLessThan(RSS_GROWTH_BOUND);
  });

  test('CVE-2019-9518 empty frames flood: DATA frames that carry nothing end the connection', async () => {
    await start();
    proxy.runtime.on('ExecSync', { delayMs: Infinity });
    const client = await attacker();
    client.write(client.requestHeaders(1, EXEC_SYNC));
    const empty = client.frame(FrameType.DATA, 0, 1);
    await flood(client, 20, () => client.write(empty));
    await endsWithCalm(client, 'emptyFrames');
  });

  test('CVE-2023-44487 rapid reset: streams opened and reset at once end the connection; the runtime sees few of them', async () => {
    await start();
    proxy.runtime.on('ExecSync', { delayMs: Infinity });
    const client = await attacker();
    let id = 1;
    const result = await flood(client, 100, () => {
      for (let n = 0; n < 100; n++, id += 2) {
        client.write(
          client.requestHeaders(id, EXEC_SYNC),
          client.message(id, Buffer.alloc(0)),
          client.frame(FrameType.RST_STREAM, 0, id, u32(ErrorCode.CANCEL)),
        );
      }
    });
    await endsWithCalm(client, 'resetStreams');
    expect(result.maxHeld).toBeLessThan(MiB);
    // At most the limit's worth of calls (500) ever reached the runtime, and each was cancelled.
    expect(proxy.runtime.calls.filter((c) => c.name === 'ExecSync').length).toBeLessThanOrEqual(500);
    await waitFor(() => proxy.runtime.calls.every((c) => c.name !== 'ExecSync' || c.cancelled));
  });

  test('a client that cancels some of its calls, fewer than half, is never disconnected', async () => {
    await start({ maxResetStreams: 10 });
    proxy.runtime.on('ExecSync', { delayMs: Infinity });
    const client = await attacker();
    for (let id = 1; id <= 180; id += 2) {
      if (id % 3 === 0) {
        client.write(
          client.requestHeaders(id, EXEC_SYNC),
          client.message(id, Buffer.alloc(0)),
          client.frame(FrameType.RST_STREAM, 0, id, u32(ErrorCode.CANCEL)),
        );
      } else {
        client.write(client.requestHeaders(id, VERSION), client.message(id, versionRequest));
        expect(await client.status(id)).toBe('0');
      }
    }
    expect(client.frames.some((f) => f.type === FrameType.GOAWAY)).toBe(false);
    expect(await triggered('resetStreams')).toBeUndefined();
  });

  test('CVE-2024-27316: 100 MB of empty CONTINUATION frames after one HEADERS end the connection after a few', async () => {
    await start();
    const client = await attacker();
    client.write(client.requestHeaders(1, VERSION, [], 0));
    const megabyte = Buffer.concat(Array.from({ length: Math.floor(MiB / 9) }, () => client.frame(FrameType.CONTINUATION, 0, 1)));
    const result = await flood(client, 100, () => client.write(megabyte));
    await endsWithCalm(client, 'continuationFrames');
    expect(result.maxHeld).toBeLessThan(MiB);
  });

  test('CONTINUATION frames of one byte each end the connection after a few', async () => {
    await start();
    const client = await attacker();
    client.write(client.requestHeaders(1, VERSION, [], 0));
    const oneByte = client.frame(FrameType.CONTINUATION, 0, 1, Buffer.from([0x88]));
    await flood(client, 20, () => client.write(oneByte, oneByte));
    await endsWithCalm(client, 'continuationFrames');
  });

  test('an endless header block of large CONTINUATION frames ends the connection at the header list limit', async () => {
    await start({ maxHeaderListBytes: 16_384, maxContinuationFrames: 1000 });
    const client = await attacker();
    client.write(client.requestHeaders(1, VERSION, [], 0));
    const piece = client.frame(FrameType.CONTINUATION, 0, 1, Buffer.alloc(1000, 0x41));
    const result = await flood(client, 100, () => client.write(piece));
    await endsWithCalm(client, 'headerListBytes');
    expect(result.maxHeld).toBeLessThan(MiB);
  });

  test('a header block that decodes to a huge list (one table entry referenced thousands of times) is refused, never built', async () => {
    await start();
    const client = await attacker();
    // A 4,000-byte value added to the dynamic table (literal, incremental indexing, new name), then referenced
    // (index 62) 12,000 times: 16 KB on the wire, 48 MB once decoded.
    const insert = Buffer.concat([
      Buffer.from([0x40, 0x05]),
      Buffer.from('x-big'),
      Buffer.from([0x7f, 0xa1, 0x1e]),
      Buffer.alloc(4000, 0x61),
    ]);
    const bomb = Buffer.alloc(12_000, 0xbe);
    let id = 1;
    const result = await flood(client, 20, () => {
      client.write(
        client.frame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, id, Buffer.concat([id === 1 ? insert : Buffer.alloc(0), bomb])),
      );
      id += 2;
    });
    expect(await client.status(1)).toBe(String(grpc.status.RESOURCE_EXHAUSTED));
    expect(await triggered('headerListBytes')).toBeGreaterThan(0);
    expect(result.maxHeld).toBeLessThan(MiB);
  });

  test('a request sent one byte per DATA frame is held compactly and reaches the runtime intact', async () => {
    await start();
    const client = await attacker();
    const message = Buffer.alloc(64 * 1024, 3);
    const framed = Buffer.concat([Buffer.from([0, 0, 1, 0, 0]), message]);
    client.write(client.requestHeaders(1, EXEC_SYNC));
    const size = Math.ceil(framed.length / 16);
    await flood(client, 16, (i) => {
      const part = framed.subarray(i * size, (i + 1) * size);
      client.write(Buffer.concat(Array.from(part, (byte) => client.frame(FrameType.DATA, 0, 1, Buffer.from([byte])))));
    });
    client.write(client.frame(FrameType.DATA, Flag.END_STREAM, 1, Buffer.alloc(0)));
    expect(await client.status(1)).toBe('0');
    expect(proxy.runtime.lastCall('ExecSync')?.requestBytes.equals(message)).toBe(true);
  });
});
