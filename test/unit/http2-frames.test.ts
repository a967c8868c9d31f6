import { ConnectionError, ErrorCode, Flag, FrameReader, FrameType, dataPayload, headersFragment } from '../../src/proxy/http2/frames';
import { frameHeader } from '../../src/proxy/http2/frame-writers';

interface Seen {
  type: number;
  flags: number;
  streamId: number;
  payload: string;
}

/** Frames as the reader hands them out; a DATA frame that came in pieces is joined again (see below). */
function collect(maxFrameSize = 16_384): { reader: FrameReader; seen: Seen[]; pieces: number[] } {
  const seen: Seen[] = [];
  const pieces: number[] = [];
  let joining = false;
  const reader = new FrameReader(
    {
      onFrame: (type, flags, streamId, payload) => {
        const last = seen[seen.length - 1];
        if (type === FrameType.DATA) pieces.push(payload.length);
        if (type === FrameType.DATA && joining && last !== undefined && last.streamId === streamId) {
          last.payload += payload.toString('hex');
          last.flags = flags;
        } else {
          seen.push({ type, flags, streamId, payload: payload.toString('hex') });
        }
        joining = type === FrameType.DATA && !(flags & Flag.END_STREAM);
      },
    },
    maxFrameSize,
  );
  return { reader, seen, pieces };
}

const frame = (type: number, flags: number, streamId: number, payload: Buffer): Buffer =>
  Buffer.concat([frameHeader(payload.length, type, flags, streamId), payload]);

const stream = Buffer.concat([
  frame(FrameType.SETTINGS, 0, 0, Buffer.from('000300000064', 'hex')),
  frame(FrameType.HEADERS, Flag.END_HEADERS, 1, Buffer.from('8286', 'hex')),
  frame(FrameType.DATA, Flag.END_STREAM, 1, Buffer.alloc(300, 7)),
  frame(FrameType.PING, 0, 0, Buffer.alloc(8, 1)),
  frame(FrameType.WINDOW_UPDATE, 0, 0x7fffffff, Buffer.from('00001000', 'hex')),
  frame(0x42, 0xff, 3, Buffer.alloc(0)),
]);
const expected: Seen[] = [
  { type: FrameType.SETTINGS, flags: 0, streamId: 0, payload: '000300000064' },
  { type: FrameType.HEADERS, flags: Flag.END_HEADERS, streamId: 1, payload: '8286' },
  { type: FrameType.DATA, flags: Flag.END_STREAM, streamId: 1, payload: Buffer.alloc(300, 7).toString('hex') },
  { type: FrameType.PING, flags: 0, streamId: 0, payload: '0101010101010101' },
  { type: FrameType.WINDOW_UPDATE, flags: 0, streamId: 0x7fffffff, payload: '00001000' },
  { type: 0x42, flags: 0xff, streamId: 3, payload: '' },
];

describe('the frame reader', () => {
  test.each([
    ['in one chunk', [stream.length]],
    ['one byte at a time', Array.from({ length: stream.length }, () => 1)],
    ['in chunks of 7 bytes', Array.from({ length: Math.ceil(stream.length / 7) }, () => 7)],
    ['split inside a frame header', [3, 20, 4, stream.length]],
  ])('yields the same frames when the bytes arrive %s', (_name, sizes) => {
    const { reader, seen } = collect();
    let at = 0;
    for (const size of sizes) {
      reader.push(stream.subarray(at, Math.min(stream.length, at + size)));
      at += size;
      if (at >= stream.length) break;
    }
    expect(seen).toEqual(expected);
    expect(reader.heldBytes).toBe(0);
  });

  test('a DATA frame split across chunks comes out in pieces as its bytes arrive, END_STREAM on the last', () => {
    const { reader, seen, pieces } = collect();
    const data = frame(FrameType.DATA, Flag.END_STREAM, 1, Buffer.alloc(300, 7));
    reader.push(data.subarray(0, 100));
    expect(pieces).toEqual([91]);
    reader.push(data.subarray(100, 250));
    reader.push(data.subarray(250));
    expect(pieces).toEqual([91, 150, 59]);
    expect(seen).toEqual([{ type: FrameType.DATA, flags: Flag.END_STREAM, streamId: 1, payload: Buffer.alloc(300, 7).toString('hex') }]);
    expect(reader.heldBytes).toBe(0);
  });

  test('a padded DATA frame split across chunks is handed out whole', () => {
    const { reader, pieces } = collect();
    const data = frame(FrameType.DATA, Flag.PADDED, 1, Buffer.concat([Buffer.from([4]), Buffer.alloc(200, 1), Buffer.alloc(4)]));
    reader.push(data.subarray(0, 50));
    expect(pieces).toEqual([]);
    reader.push(data.subarray(50));
    expect(pieces).toEqual([205]);
  });

  test('the reserved bit of the stream id is ignored', () => {
    const { reader, seen } = collect();
    const bytes = frame(FrameType.PING, 0, 0, Buffer.alloc(8));
    bytes[5] = 0x80;
    reader.push(bytes);
    expect(seen[0]?.streamId).toBe(0);
  });

  test('a frame larger than the announced maximum is a FRAME_SIZE_ERROR before its payload arrives', () => {
    const { reader } = collect(16_384);
    const header = frameHeader(16_385, FrameType.DATA, 0, 1);
    expect(() => reader.push(header)).toThrow(expect.objectContaining({ code: ErrorCode.FRAME_SIZE_ERROR }) as Error);
  });

  test('a frame of exactly the maximum size is read', () => {
    const { reader, seen } = collect(16_384);
    reader.push(frame(FrameType.DATA, 0, 1, Buffer.alloc(16_384)));
    expect(seen).toHaveLength(1);
  });

  test('holds at most one partial frame', () => {
    const { reader } = collect();
    reader.push(frame(FrameType.HEADERS, Flag.END_HEADERS, 1, Buffer.alloc(10_000)).subarray(0, 5000));
    expect(reader.heldBytes).toBe(5000);
  });

  test('stops handing out frames once stopped', () => {
    const seen: number[] = [];
    const reader: FrameReader = new FrameReader({
      onFrame: (type) => {
        seen.push(type);
        reader.stop();
      },
    });
    reader.push(stream);
    expect(seen).toEqual([FrameType.SETTINGS]);
  });
});

describe('frame payloads', () => {
  test('HEADERS with padding and priority yield only the block fragment', () => {
    const payload = Buffer.concat([Buffer.from([2]), Buffer.from('8000000310', 'hex'), Buffer.from('8286'), Buffer.alloc(2)]);
    expect(headersFragment(Flag.PADDED | Flag.PRIORITY, payload).toString()).toBe('8286');
  });

  test.each([
    ['padding longer than the frame', Flag.PADDED, Buffer.from([5, 1, 2])],
    ['priority fields missing', Flag.PRIORITY, Buffer.from([1, 2])],
    ['an empty padded frame', Flag.PADDED, Buffer.alloc(0)],
  ])('HEADERS with %s are rejected', (_name, flags, payload) => {
    expect(() => headersFragment(flags, payload)).toThrow(ConnectionError);
  });

  test('DATA padding is removed; padding as long as the frame is a PROTOCOL_ERROR', () => {
    expect(dataPayload(Flag.PADDED, Buffer.from([2, 0x61, 0x62, 0, 0])).toString()).toBe('ab');
    expect(dataPayload(0, Buffer.from('abc')).toString()).toBe('abc');
    expect(() => dataPayload(Flag.PADDED, Buffer.from([3, 1, 2]))).toThrow(
      expect.objectContaining({ code: ErrorCode.PROTOCOL_ERROR }) as Error,
    );
  });
});
