/**
 * HTTP/2 frames (RFC 9113 §4, §6): the constants the relay uses, and a reader that cuts a byte stream into
 * frames without copying whole frames that arrive in one chunk. The frames the proxy writes: frame-writers.ts.
 */

export const FRAME_HEADER_BYTES = 9;
export const CONNECTION_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** The largest SETTINGS_MAX_FRAME_SIZE a peer may announce, and the smallest (the default). */
export const MAX_FRAME_SIZE_LIMIT = 16_777_215;
export const DEFAULT_MAX_FRAME_SIZE = 16_384;
export const DEFAULT_WINDOW = 65_535;
export const MAX_WINDOW = 2 ** 31 - 1;
/** The largest stream identifier (31 bits): a GOAWAY that promises to process every stream announces it. */
export const MAX_STREAM_ID = 2 ** 31 - 1;

export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

export const Flag = {
  END_STREAM: 0x1,
  ACK: 0x1,
  END_HEADERS: 0x4,
  PADDED: 0x8,
  PRIORITY: 0x20,
} as const;

export const Setting = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
} as const;

/** Error codes of RST_STREAM and GOAWAY (RFC 9113 §7). */
export const ErrorCode = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;
export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

const errorNames = new Map<number, string>(Object.entries(ErrorCode).map(([name, code]) => [code, name]));

export function errorCodeName(code: number): string {
  return errorNames.get(code) ?? `0x${code.toString(16)}`;
}

/** Limits on a peer that end its connection when it goes past them; each one is counted under its name. */
export type ConnectionLimitName =
  'headerListBytes' | 'continuationFrames' | 'settingsEntries' | 'emptyFrames' | 'resetStreams' | 'heldResponseBytes';

/**
 * A connection error (RFC 9113 §5.4.1): the connection ends with GOAWAY carrying `code`. One that names a
 * `limit` is a limit the peer went past (ENHANCE_YOUR_CALM), counted as that limit rather than as a protocol error.
 */
export class ConnectionError extends Error {
  override readonly name = 'ConnectionError';
  constructor(
    readonly code: ErrorCodeValue,
    message: string,
    readonly limit?: ConnectionLimitName,
  ) {
    super(message);
  }
}

/** A stream error (RFC 9113 §5.4.2): only that stream ends, with RST_STREAM carrying `code`. */
export class StreamError extends Error {
  override readonly name = 'StreamError';
  constructor(
    readonly streamId: number,
    readonly code: ErrorCodeValue,
    message: string,
  ) {
    super(message);
  }
}

export interface FrameHandler {
  /** `payload` is a view of the received bytes; it stays valid (nothing reuses the memory). */
  onFrame(type: number, flags: number, streamId: number, payload: Buffer): void;
}

/**
 * Cuts a byte stream into frames. A frame inside one chunk is handed out as a view of that chunk. A DATA frame
 * split across chunks (the bulk of the bytes of large messages) is handed out in pieces as its bytes arrive,
 * each piece a DATA frame of its own to the handler (END_STREAM on the last), so nothing is copied; any other
 * split frame is copied together, and at most one such frame (≤ max frame size) is ever held.
 */
export class FrameReader {
  /** Pieces of a frame split across chunks, and how many bytes they hold. */
  private partial: Buffer[] = [];
  private partialBytes = 0;
  /** The DATA frame whose payload is still arriving. */
  private dataRun: { streamId: number; flags: number; left: number } | undefined;
  private stopped = false;
  /** The SETTINGS_MAX_FRAME_SIZE this side announced: larger frames are a connection error. */
  maxFrameSize: number;

  constructor(
    private readonly handler: FrameHandler,
    maxFrameSize = DEFAULT_MAX_FRAME_SIZE,
  ) {
    this.maxFrameSize = maxFrameSize;
  }

  /** Bytes held back waiting for the rest of a frame. */
  get heldBytes(): number {
    return this.partialBytes;
  }

  /** No further frames are handed out (the connection is going away). */
  stop(): void {
    this.stopped = true;
    this.partial = [];
    this.partialBytes = 0;
    this.dataRun = undefined;
  }

  push(chunk: Buffer): void {
    if (this.stopped) return;
    let offset = 0;
    if (this.dataRun !== undefined) offset = this.continueData(chunk, 0);
    else if (this.partialBytes > 0) offset = this.completePartial(chunk);
    if (offset < 0) return;
    const end = chunk.length;
    while (end - offset >= FRAME_HEADER_BYTES && !this.stopped) {
      const length = this.frameLength(chunk, offset);
      const frameEnd = offset + FRAME_HEADER_BYTES + length;
      if (frameEnd > end) {
        if (this.startDataRun(chunk, offset, length)) return;
        break;
      }
      this.dispatch(chunk, offset, frameEnd);
      offset = frameEnd;
    }
    if (offset < end && !this.stopped) {
      this.partial.push(chunk.subarray(offset));
      this.partialBytes = end - offset;
    }
  }

  /** An unpadded DATA frame cut short by the end of `bytes`: what is here goes out now, the rest as it comes. */
  private startDataRun(bytes: Buffer, offset: number, length: number): boolean {
    const flags = bytes[offset + 4] as number;
    if (bytes[offset + 3] !== FrameType.DATA || (flags & Flag.PADDED) !== 0) return false;
    const streamId = bytes.readUInt32BE(offset + 5) & 0x7fffffff;
    const payload = bytes.subarray(offset + FRAME_HEADER_BYTES);
    this.dataRun = { streamId, flags, left: length - payload.length };
    if (payload.length > 0) this.handler.onFrame(FrameType.DATA, flags & ~Flag.END_STREAM, streamId, payload);
    return true;
  }

  /** More of the DATA frame in progress; returns where the rest of `chunk` starts, or -1 if it was all DATA. */
  private continueData(chunk: Buffer, at: number): number {
    const run = this.dataRun as { streamId: number; flags: number; left: number };
    const take = Math.min(run.left, chunk.length - at);
    run.left -= take;
    const last = run.left === 0;
    if (last) this.dataRun = undefined;
    this.handler.onFrame(FrameType.DATA, last ? run.flags : run.flags & ~Flag.END_STREAM, run.streamId, chunk.subarray(at, at + take));
    return last && !this.stopped ? at + take : -1;
  }

  /**
   * Completes the frame held from earlier chunks with the start of `chunk`, copying only that one frame;
   * returns where the rest of `chunk` starts, or -1 if the frame is still not complete.
   */
  private completePartial(chunk: Buffer): number {
    let head = this.partial.length === 1 ? (this.partial[0] as Buffer) : Buffer.concat(this.partial, this.partialBytes);
    let offset = 0;
    if (head.length < FRAME_HEADER_BYTES) {
      offset = Math.min(FRAME_HEADER_BYTES - head.length, chunk.length);
      head = Buffer.concat([head, chunk.subarray(0, offset)]);
      if (head.length < FRAME_HEADER_BYTES) {
        this.partial = [head];
        this.partialBytes = head.length;
        return -1;
      }
    }
    const length = this.frameLength(head, 0);
    const need = FRAME_HEADER_BYTES + length - head.length;
    if (chunk.length - offset < need) {
      this.partial = [];
      this.partialBytes = 0;
      // A DATA frame whose header just completed: its payload goes out as it arrives.
      if (head.length === FRAME_HEADER_BYTES && this.startDataRun(head, 0, length)) return this.continueData(chunk, offset);
      this.partial = [head, chunk.subarray(offset)];
      this.partialBytes = head.length + chunk.length - offset;
      return -1;
    }
    const frame = Buffer.concat([head, chunk.subarray(offset, offset + need)]);
    this.partial = [];
    this.partialBytes = 0;
    this.dispatch(frame, 0, frame.length);
    return this.stopped ? -1 : offset + need;
  }

  private frameLength(bytes: Buffer, offset: number): number {
    const length = ((bytes[offset] as number) << 16) | ((bytes[offset + 1] as number) << 8) | (bytes[offset + 2] as number);
    if (length > this.maxFrameSize) {
      throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, `frame of ${length} bytes exceeds the maximum frame size ${this.maxFrameSize}`);
    }
    return length;
  }

  private dispatch(bytes: Buffer, offset: number, frameEnd: number): void {
    const type = bytes[offset + 3] as number;
    const flags = bytes[offset + 4] as number;
    const streamId =
      (((bytes[offset + 5] as number) & 0x7f) << 24) |
      ((bytes[offset + 6] as number) << 16) |
      ((bytes[offset + 7] as number) << 8) |
      (bytes[offset + 8] as number);
    this.handler.onFrame(type, flags, streamId, bytes.subarray(offset + FRAME_HEADER_BYTES, frameEnd));
  }
}

/** The header block fragment of a HEADERS frame: padding and priority fields removed (priority is ignored). */
export function headersFragment(flags: number, payload: Buffer): Buffer {
  let start = 0;
  let end = payload.length;
  if (flags & Flag.PADDED) {
    if (payload.length < 1) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'HEADERS frame too short for its padding');
    end -= payload[0] as number;
    start = 1;
  }
  if (flags & Flag.PRIORITY) start += 5;
  if (start > end) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'HEADERS padding exceeds the frame');
  return start === 0 && end === payload.length ? payload : payload.subarray(start, end);
}

/** The data of a DATA frame without its padding. */
export function dataPayload(flags: number, payload: Buffer): Buffer {
  if (!(flags & Flag.PADDED)) return payload;
  if (payload.length < 1) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'DATA frame too short for its padding');
  const pad = payload[0] as number;
  if (pad >= payload.length) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'DATA padding exceeds the frame');
  return payload.subarray(1, payload.length - pad);
}
