/**
 * Property-based fuzzing of what reads client bytes: the frame reader and the client connection behind it,
 * the HPACK decoder, and the gRPC message framing. Random and mutated byte streams, cut at random points:
 * no exception escapes, nothing grows without bound. A fixed seed and a bounded number of runs here;
 * `npm run fuzz` runs many more (FUZZ_RUNS, FUZZ_SEED).
 */
import fc from 'fast-check';
import { limitsSchema } from '../../src/config/schema';
import { GrpcStatus } from '../../src/errors';
import { ClientConnection } from '../../src/proxy/client-connection';
import type { ClientStream } from '../../src/proxy/client-stream';
import { FrameScanner, MessageTooLargeError, frameMessage } from '../../src/proxy/grpc-frames';
import { CONNECTION_PREFACE, ConnectionError, Flag, FrameType } from '../../src/proxy/http2/frames';
import { frameHeader, settingsFrame } from '../../src/proxy/http2/frame-writers';
import { HpackDecoder } from '../../src/proxy/http2/hpack-decoder';
import { HpackEncoder, maxEncodedLength } from '../../src/proxy/http2/hpack-encoder';
import { FakeSocket } from '../support/fake-socket';

const RUNS = Number(process.env['FUZZ_RUNS'] ?? 400);
const SEED = Number(process.env['FUZZ_SEED'] ?? 20261201);
const params = { numRuns: RUNS, seed: SEED, endOnFailure: true };
jest.setTimeout(Math.max(60_000, RUNS * 5));

const MAX_FRAME = 16_384;

function frame(type: number, flags: number, streamId: number, payload: Uint8Array): Buffer {
  return Buffer.concat([frameHeader(payload.length, type, flags, streamId), payload]);
}

const encoder = new HpackEncoder();
function headerBlock(fields: readonly string[]): Buffer {
  const out = Buffer.alloc(maxEncodedLength(fields));
  return out.subarray(0, encoder.encodeInto(fields, out, 0));
}

const streamIds = fc.constantFrom(0, 1, 2, 3, 5, 7, 9, 0x7fffffff);

/** Frames a client could send, well formed or not. */
const anyFrame: fc.Arbitrary<Buffer> = fc.oneof(
  fc
    .record({
      type: fc.integer({ min: 0, max: 12 }),
      flags: fc.integer({ min: 0, max: 255 }),
      id: streamIds,
      payload: fc.uint8Array({ maxLength: 48 }),
    })
    .map(({ type, flags, id, payload }) => frame(type, flags, id, payload)),
  fc
    .record({
      id: streamIds,
      path: fc.constantFrom('/runtime.v1.RuntimeService/Version', '/x/y', ''),
      end: fc.boolean(),
      split: fc.boolean(),
    })
    .map(({ id, path, end, split }) => {
      const block = headerBlock([':method', 'POST', ':scheme', 'http', ':path', path, 'content-type', 'application/grpc']);
      const flags = end ? Flag.END_STREAM : 0;
      if (!split) return frame(FrameType.HEADERS, flags | Flag.END_HEADERS, id, block);
      const half = block.length >> 1;
      return Buffer.concat([
        frame(FrameType.HEADERS, flags, id, block.subarray(0, half)),
        frame(FrameType.CONTINUATION, Flag.END_HEADERS, id, block.subarray(half)),
      ]);
    }),
  fc
    .record({ id: streamIds, message: fc.uint8Array({ maxLength: 64 }), end: fc.boolean() })
    .map(({ id, message, end }) => frame(FrameType.DATA, end ? Flag.END_STREAM : 0, id, frameMessage(message))),
  fc.record({ id: streamIds, inc: fc.integer({ min: 0, max: 0x7fffffff }) }).map(({ id, inc }) => {
    const payload = Buffer.alloc(4);
    payload.writeUInt32BE(inc);
    return frame(FrameType.WINDOW_UPDATE, 0, id, payload);
  }),
  fc.record({ id: streamIds, code: fc.integer({ min: 0, max: 14 }) }).map(({ id, code }) => {
    const payload = Buffer.alloc(4);
    payload.writeUInt32BE(code);
    return frame(FrameType.RST_STREAM, 0, id, payload);
  }),
  fc.constant(frame(FrameType.PING, 0, 0, Buffer.alloc(8))),
  fc.array(fc.tuple(fc.integer({ min: 0, max: 8 }), fc.nat()), { maxLength: 4 }).map((s) => settingsFrame(s)),
);

/** A byte stream: a handshake (sometimes) then frames, with a few bytes mutated, cut into chunks. */
const clientBytes = fc
  .record({
    handshake: fc.boolean(),
    frames: fc.array(anyFrame, { maxLength: 24 }),
    flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }),
    cuts: fc.array(fc.nat(), { maxLength: 6 }),
  })
  .map(({ handshake, frames, flips, cuts }) => {
    const bytes = Buffer.concat([...(handshake ? [CONNECTION_PREFACE, settingsFrame([])] : []), ...frames]);
    for (const [at, value] of flips) if (bytes.length > 0) bytes[at % bytes.length] = value;
    const points = [...new Set(cuts.map((c) => (bytes.length === 0 ? 0 : c % bytes.length)))].sort((a, b) => a - b);
    const chunks: Buffer[] = [];
    let last = 0;
    for (const p of points) {
      chunks.push(bytes.subarray(last, p));
      last = p;
    }
    chunks.push(bytes.subarray(last));
    return chunks.filter((c) => c.length > 0);
  });

function connection(socket: FakeSocket, onRequest: (stream: ClientStream) => void): ClientConnection {
  return new ClientConnection(socket.asSocket(), {
    limits: limitsSchema.parse({
      streamWindowBytes: 65_535,
      connectionWindowBytes: 1 << 20,
      maxHeaderListBytes: 16_384,
      maxConcurrentStreams: 8,
      maxHeldRequestBytes: 4096,
      maxHeldResponseBytes: 1 << 20,
      maxResetStreams: 4,
      handshakeTimeoutMs: 60_000,
      handshakeMaxBytes: 4096,
    }),
    maxMessageBytes: 1024,
    onRequest,
    onLimit: () => undefined,
    onProtocolError: () => undefined,
    onObserverFault: () => undefined,
    onClosed: () => undefined,
  });
}

/** Calls that end now, that read their request first, and that stay open until the connection goes. */
function answer(stream: ClientStream): void {
  const ok = { code: GrpcStatus.OK, message: '', fromProxy: true } as const;
  switch (stream.id % 3) {
    case 0:
      stream.finish(ok);
      return;
    case 1:
      stream.readRequest().then(
        () => stream.finish(ok),
        () => stream.finish({ ...ok, code: GrpcStatus.CANCELLED }),
      );
      return;
    default:
      stream.respond({ messages: [Buffer.from('reply')] });
  }
}

describe('fuzzing what reads client bytes', () => {
  test('a client connection takes any byte stream without an exception escaping', async () => {
    await fc.assert(
      fc.asyncProperty(clientBytes, async (chunks) => {
        const socket = new FakeSocket();
        const conn = connection(socket, answer);
        for (const chunk of chunks) {
          if (socket.destroyed) break;
          socket.emit('data', chunk);
          expect(readerHeld(conn)).toBeLessThanOrEqual(MAX_FRAME + 9);
        }
        await new Promise<void>((resolve) => setImmediate(resolve));
        socket.destroy();
      }),
      params,
    );
  });

  test('the HPACK decoder throws only connection errors, whatever the block', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          new HpackDecoder().decode(Buffer.from(bytes), 4096);
        } catch (err) {
          expect(err).toBeInstanceOf(ConnectionError);
        }
      }),
      params,
    );
  });

  test('gRPC message framing: messages come out whole however the bytes are cut; too large is the only error', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 6 }), fc.array(fc.nat(), { maxLength: 8 }), (messages, cuts) => {
        const bytes = Buffer.concat(messages.map((m) => frameMessage(m)));
        const seen: string[] = [];
        const scanner = new FrameScanner({ maxMessageBytes: 200, onMessage: (m) => seen.push(m.toString('hex')) });
        const points = [...new Set(cuts.map((c) => (bytes.length === 0 ? 0 : c % bytes.length)))].sort((a, b) => a - b);
        let last = 0;
        let tooLarge = false;
        try {
          for (const p of [...points, bytes.length]) {
            scanner.push(bytes.subarray(last, p));
            last = p;
          }
        } catch (err) {
          expect(err).toBeInstanceOf(MessageTooLargeError);
          tooLarge = true;
        }
        const fitting = messages.findIndex((m) => m.length > 200);
        const expected = (fitting === -1 ? messages : messages.slice(0, fitting)).map((m) => Buffer.from(m).toString('hex'));
        expect(tooLarge).toBe(fitting !== -1);
        expect(seen).toEqual(expected);
      }),
      params,
    );
  });

  test('random bytes after a valid handshake never make the reader hold more than a frame', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ minLength: 1, maxLength: 4096 }), { maxLength: 8 }), (chunks) => {
        const socket = new FakeSocket();
        const conn = connection(socket, answer);
        socket.emit('data', Buffer.concat([CONNECTION_PREFACE, settingsFrame([])]));
        for (const chunk of chunks) {
          if (socket.destroyed || socket.ended) break;
          socket.emit('data', Buffer.from(chunk));
          expect(readerHeld(conn)).toBeLessThanOrEqual(MAX_FRAME + 9);
        }
        socket.destroy();
      }),
      params,
    );
  });
});

function readerHeld(conn: ClientConnection): number {
  return (conn as unknown as { reader: { heldBytes: number } }).reader.heldBytes;
}
