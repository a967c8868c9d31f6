import * as net from 'node:net';
import { CONNECTION_PREFACE, Flag, FrameReader, FrameType } from '../../src/proxy/http2/frames';
import { SETTINGS_ACK, frameHeader, settingsFrame } from '../../src/proxy/http2/frame-writers';
import { HpackDecoder } from '../../src/proxy/http2/hpack-decoder';
import { HpackEncoder, maxEncodedLength } from '../../src/proxy/http2/hpack-encoder';
import { frameMessage } from '../../src/proxy/grpc-frames';

/** A 32-bit big-endian field (a window increment, an error code, a stream dependency). */
export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

/** The header list of a gRPC request for `path` as grpc-go sends it, `extra` fields after. */
export function grpcRequestFields(path: string, extra: readonly string[] = []): string[] {
  return [
    ':method',
    'POST',
    ':scheme',
    'http',
    ':path',
    path,
    ':authority',
    'localhost',
    'content-type',
    'application/grpc',
    'te',
    'trailers',
    ...extra,
  ];
}

export interface ReceivedFrame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Buffer;
  /** Decoded fields of a complete HEADERS block (names and values alternating). */
  readonly fields?: readonly string[];
}

/**
 * A hand-driven HTTP/2 client for protocol tests: it writes whatever frames a test builds, byte for byte, and
 * records every frame the proxy sends back, answering SETTINGS and nothing else.
 */
export class RawH2Client {
  readonly frames: ReceivedFrame[] = [];
  readonly socket: net.Socket;
  private readonly encoder = new HpackEncoder();
  private readonly decoder = new HpackDecoder();
  private readonly reader: FrameReader;
  private waiters: { test: (f: ReceivedFrame) => boolean; resolve: (f: ReceivedFrame) => void }[] = [];
  readonly closed: Promise<void>;
  private pendingBlock: Buffer[] = [];

  constructor(socketPath: string) {
    this.socket = net.connect(socketPath);
    this.socket.on('error', () => undefined);
    this.reader = new FrameReader(
      { onFrame: (type, flags, streamId, payload) => this.onFrame(type, flags, streamId, payload) },
      16_777_215,
    );
    this.socket.on('data', (chunk: Buffer) => this.reader.push(chunk));
    this.closed = new Promise((resolve) => this.socket.once('close', () => resolve()));
  }

  private prefaceSent = false;

  /** Preface and a SETTINGS frame, as every client starts; the proxy's SETTINGS are acknowledged from then on. */
  handshake(settings: readonly (readonly [number, number])[] = []): this {
    this.write(CONNECTION_PREFACE, settingsFrame(settings));
    this.prefaceSent = true;
    for (const f of this.frames) if (f.type === FrameType.SETTINGS && !(f.flags & Flag.ACK)) this.socket.write(SETTINGS_ACK);
    return this;
  }

  write(...chunks: Buffer[]): this {
    for (const chunk of chunks) this.socket.write(chunk);
    return this;
  }

  frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
    return Buffer.concat([frameHeader(payload.length, type, flags, streamId), payload]);
  }

  /** A HEADERS frame carrying a gRPC request for `path`, encoded with this client's HPACK context. */
  requestHeaders(streamId: number, path: string, extra: readonly string[] = [], flags: number = Flag.END_HEADERS): Buffer {
    return this.frame(FrameType.HEADERS, flags, streamId, this.headerBlock(grpcRequestFields(path, extra)));
  }

  headerBlock(fields: readonly string[]): Buffer {
    const out = Buffer.alloc(maxEncodedLength(fields));
    return out.subarray(0, this.encoder.encodeInto(fields, out, 0));
  }

  /** A DATA frame holding one framed gRPC message. */
  message(streamId: number, message: Buffer, end = true): Buffer {
    return this.frame(FrameType.DATA, end ? Flag.END_STREAM : 0, streamId, frameMessage(message));
  }

  /** The first frame received (or yet to come) that passes `test`. */
  next(test: (f: ReceivedFrame) => boolean): Promise<ReceivedFrame> {
    const found = this.frames.find(test);
    if (found) return Promise.resolve(found);
    return new Promise((resolve) => this.waiters.push({ test, resolve }));
  }

  goaway(): Promise<{ lastStreamId: number; code: number }> {
    return this.next((f) => f.type === FrameType.GOAWAY).then((f) => ({
      lastStreamId: f.payload.readUInt32BE(0),
      code: f.payload.readUInt32BE(4),
    }));
  }

  reset(streamId: number): Promise<number> {
    return this.next((f) => f.type === FrameType.RST_STREAM && f.streamId === streamId).then((f) => f.payload.readUInt32BE(0));
  }

  /** The grpc-status the proxy ended `streamId` with (from trailers or a trailers-only response). */
  status(streamId: number): Promise<string | undefined> {
    return this.next((f) => f.type === FrameType.HEADERS && f.streamId === streamId && (f.flags & Flag.END_STREAM) !== 0).then((f) => {
      const fields = f.fields ?? [];
      const at = fields.indexOf('grpc-status');
      return at >= 0 && at % 2 === 0 ? fields[at + 1] : undefined;
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private onFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    let fields: readonly string[] | undefined;
    if (type === FrameType.SETTINGS && !(flags & Flag.ACK) && this.prefaceSent) this.socket.write(SETTINGS_ACK);
    if (type === FrameType.HEADERS || type === FrameType.CONTINUATION) {
      this.pendingBlock.push(payload);
      if (flags & Flag.END_HEADERS) {
        fields = this.decoder.decode(Buffer.concat(this.pendingBlock), 1 << 30).fields;
        this.pendingBlock = [];
      }
    }
    const frame: ReceivedFrame = fields === undefined ? { type, flags, streamId, payload } : { type, flags, streamId, payload, fields };
    this.frames.push(frame);
    const ready = this.waiters.filter((w) => w.test(frame));
    this.waiters = this.waiters.filter((w) => !w.test(frame));
    for (const w of ready) w.resolve(frame);
  }
}
