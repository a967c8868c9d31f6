import type * as net from 'node:net';
import {
  ConnectionError,
  DEFAULT_MAX_FRAME_SIZE,
  DEFAULT_WINDOW,
  ErrorCode,
  Flag,
  FrameReader,
  FrameType,
  MAX_FRAME_SIZE_LIMIT,
  MAX_WINDOW,
  SETTINGS_ACK,
  Setting,
  StreamError,
  dataPayload,
  goawayFrame,
  headersFragment,
  pingFrame,
  rstStreamFrame,
  settingsFrame,
  windowUpdateFrame,
  type ErrorCodeValue,
} from './frames';
import { HpackDecoder, type HeaderBlock } from './hpack-decoder';
import { HpackEncoder } from './hpack-encoder';
import { headerFrames } from './header-frames';

/** What this side announces, and how it paces the peer. */
export interface LocalSettings {
  /** SETTINGS_INITIAL_WINDOW_SIZE: how much the peer may send on one stream before we credit it. */
  readonly streamWindow: number;
  /** The connection-level window we give the peer (raised from 65,535 with a WINDOW_UPDATE at start). */
  readonly connectionWindow: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE; larger header lists are refused. */
  readonly maxHeaderListBytes: number;
  /** SETTINGS_MAX_CONCURRENT_STREAMS, announced only when set (servers). */
  readonly maxConcurrentStreams?: number;
}

/** The peer's settings as last received (RFC 9113 §6.5.2 defaults until then). */
interface PeerSettings {
  maxConcurrentStreams: number;
  initialWindow: number;
  maxFrameSize: number;
  maxHeaderListSize: number;
}

/** Bytes to send on a stream once its flow-control windows allow; `onSent` credits whoever they came from. */
interface OutData {
  data: Buffer;
  readonly end: boolean;
  readonly onSent: ((bytes: number) => void) | undefined;
}
interface OutHeaders {
  readonly fields: readonly string[];
  readonly end: boolean;
  readonly neverIndexed: readonly number[] | undefined;
}
type OutItem = OutData | OutHeaders;

/** Per-stream state the connection keeps; relay code extends it. */
export class Http2Stream {
  sendWindow: number;
  recvWindow: number;
  recvUncredited = 0;
  out: OutItem[] | undefined;
  /** We sent END_STREAM (or reset the stream). */
  localEnded = false;
  /** The peer sent END_STREAM (or reset the stream). */
  remoteEnded = false;
  closed = false;

  /** 0 until the stream is opened (a runtime may make new streams wait for a free slot). */
  id: number;

  constructor(id: number, sendWindow: number, recvWindow: number) {
    this.id = id;
    this.sendWindow = sendWindow;
    this.recvWindow = recvWindow;
  }
}

/** Above this many bytes waiting in the socket, credits for relayed data wait for 'drain'. */
const CREDIT_HOLD_BYTES = 64 * 1024;
/** Writes smaller than this are joined into one buffer; larger ones go out as a vector. */
const JOIN_BELOW_BYTES = 16 * 1024;

/**
 * One HTTP/2 connection as the relay sees it (RFC 9113): frames in through a FrameReader, header blocks through
 * a per-connection HPACK decoder, frames out through a per-tick outbox (one write per tick), flow control on
 * both directions. Protocol errors become stream errors (RST_STREAM) or connection errors (GOAWAY) as the RFC
 * says. Subclasses add the role: the side facing clients, the side facing a runtime.
 */
export abstract class Http2Connection<S extends Http2Stream> {
  protected readonly streams = new Map<number, S>();
  protected readonly peer: PeerSettings = {
    maxConcurrentStreams: Infinity,
    initialWindow: DEFAULT_WINDOW,
    maxFrameSize: DEFAULT_MAX_FRAME_SIZE,
    maxHeaderListSize: Infinity,
  };
  protected readonly reader = new FrameReader(this);
  protected readonly encoder = new HpackEncoder();
  private readonly decoder = new HpackDecoder();
  private sendWindow = DEFAULT_WINDOW;
  private recvWindow = DEFAULT_WINDOW;
  private recvUncredited = 0;
  private settingsAcked = false;
  private outbox: Buffer[] = [];
  private outboxBytes = 0;
  private flushScheduled = false;
  private readonly blocked = new Set<S>();
  private heldCredits: (() => void)[] | undefined;
  private block: { streamId: number; flags: number; fragments: Buffer[]; bytes: number } | undefined;
  /** Set once the connection is going away: no new streams, frames still flow for the open ones. */
  goawaySent = false;
  closed = false;

  constructor(
    readonly socket: net.Socket,
    protected readonly local: LocalSettings,
  ) {
    socket.on('drain', () => this.onDrain());
  }

  /** Our SETTINGS frame and the connection window raise, sent first on every connection. */
  protected greeting(extra: readonly (readonly [number, number])[]): Buffer[] {
    const settings: (readonly [number, number])[] = [
      [Setting.INITIAL_WINDOW_SIZE, this.local.streamWindow],
      [Setting.MAX_HEADER_LIST_SIZE, this.local.maxHeaderListBytes],
      ...extra,
    ];
    if (this.local.maxConcurrentStreams !== undefined) settings.push([Setting.MAX_CONCURRENT_STREAMS, this.local.maxConcurrentStreams]);
    const frames = [settingsFrame(settings)];
    const raise = this.local.connectionWindow - DEFAULT_WINDOW;
    if (raise > 0) frames.push(windowUpdateFrame(0, raise));
    this.recvWindow = Math.max(DEFAULT_WINDOW, this.local.connectionWindow);
    return frames;
  }

  /** A new stream's windows: until our SETTINGS are acknowledged the peer may still use the default. */
  protected newStreamWindows(): [send: number, recv: number] {
    const recv = this.settingsAcked ? this.local.streamWindow : Math.max(DEFAULT_WINDOW, this.local.streamWindow);
    return [this.peer.initialWindow, recv];
  }

  // ---- what subclasses handle ----
  protected abstract onHeaders(streamId: number, endStream: boolean, block: HeaderBlock): void;
  protected abstract onData(stream: S, data: Buffer, endStream: boolean): void;
  /** The peer reset the stream, or a stream error ended it here (`local`). */
  protected abstract onStreamReset(stream: S, code: number, local: boolean): void;
  protected abstract onGoaway(lastStreamId: number, code: number, debug: string): void;
  /** True when `id` names a stream that was never opened (frames on it are a connection error). */
  protected abstract isIdle(id: number): boolean;
  protected abstract onProtocolError(error: ConnectionError | StreamError): void;
  protected onPingAck(): void {}
  protected onSettings(): void {}

  // ---- input ----
  /** Feeds received bytes; returns false when the connection failed. */
  receive(chunk: Buffer): boolean {
    try {
      this.reader.push(chunk);
      return true;
    } catch (err) {
      if (err instanceof ConnectionError) {
        this.fail(err);
        return false;
      }
      throw err;
    }
  }

  onFrame(type: number, flags: number, id: number, payload: Buffer): void {
    try {
      if (this.block !== undefined && type !== FrameType.CONTINUATION) {
        throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'a header block was interrupted by another frame');
      }
      switch (type) {
        case FrameType.DATA:
          this.readData(flags, id, payload);
          return;
        case FrameType.HEADERS:
          this.readHeaders(flags, id, payload);
          return;
        case FrameType.CONTINUATION:
          this.readContinuation(flags, id, payload);
          return;
        case FrameType.PRIORITY:
          if (id === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'PRIORITY on stream 0');
          if (payload.length !== 5) throw new StreamError(id, ErrorCode.FRAME_SIZE_ERROR, 'PRIORITY frame is not 5 bytes');
          return;
        case FrameType.RST_STREAM:
          this.readReset(id, payload);
          return;
        case FrameType.SETTINGS:
          this.readSettings(flags, id, payload);
          return;
        case FrameType.PUSH_PROMISE:
          throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'PUSH_PROMISE is not allowed');
        case FrameType.PING:
          this.readPing(flags, id, payload);
          return;
        case FrameType.GOAWAY:
          if (id !== 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'GOAWAY on a stream');
          if (payload.length < 8) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'GOAWAY frame too short');
          this.onGoaway(payload.readUInt32BE(0) & 0x7fffffff, payload.readUInt32BE(4), payload.toString('utf8', 8, Math.min(payload.length, 264)));
          return;
        case FrameType.WINDOW_UPDATE:
          this.readWindowUpdate(id, payload);
          return;
        default:
          // Unknown frame types are ignored (RFC 9113 §4.1).
          return;
      }
    } catch (err) {
      if (!(err instanceof StreamError)) throw err;
      this.onProtocolError(err);
      const stream = this.streams.get(err.streamId);
      this.writeFrame(rstStreamFrame(err.streamId, err.code));
      if (stream) {
        this.forget(stream);
        this.onStreamReset(stream, err.code, true);
      }
    }
  }

  private readData(flags: number, id: number, payload: Buffer): void {
    if (id === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'DATA on stream 0');
    this.recvWindow -= payload.length;
    if (this.recvWindow < 0) throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'the peer overran the connection window');
    const stream = this.streams.get(id);
    if (stream === undefined || stream.remoteEnded) {
      if (stream === undefined && this.isIdle(id)) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `DATA on idle stream ${id}`);
      // A stream that just ended or was reset: what was already in flight is dropped, but still counted.
      this.creditConnection(payload.length);
      if (stream !== undefined) throw new StreamError(id, ErrorCode.STREAM_CLOSED, `DATA after the end of stream ${id}`);
      return;
    }
    stream.recvWindow -= payload.length;
    if (stream.recvWindow < 0) throw new StreamError(id, ErrorCode.FLOW_CONTROL_ERROR, `the peer overran the window of stream ${id}`);
    const data = dataPayload(flags, payload);
    const padding = payload.length - data.length;
    const end = (flags & Flag.END_STREAM) !== 0;
    if (end) stream.remoteEnded = true;
    if (padding > 0) this.consumed(stream, padding);
    this.onData(stream, data, end);
    if (end) this.closeIfDone(stream);
  }

  private readHeaders(flags: number, id: number, payload: Buffer): void {
    if (id === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'HEADERS on stream 0');
    const fragment = headersFragment(flags, payload);
    if (flags & Flag.END_HEADERS) {
      this.completeBlock(id, flags, fragment);
      return;
    }
    this.block = { streamId: id, flags, fragments: [fragment], bytes: fragment.length };
  }

  private readContinuation(flags: number, id: number, payload: Buffer): void {
    const block = this.block;
    if (block === undefined || block.streamId !== id) {
      throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'CONTINUATION without a header block in progress on its stream');
    }
    block.fragments.push(payload);
    block.bytes += payload.length;
    // A block cannot decode to less than its size, so past the limit it can only be refused: end the connection
    // rather than buffer an endless CONTINUATION stream.
    if (block.bytes > this.local.maxHeaderListBytes) {
      throw new ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, `header block larger than ${this.local.maxHeaderListBytes} bytes`);
    }
    if (!(flags & Flag.END_HEADERS)) return;
    this.block = undefined;
    this.completeBlock(id, block.flags, Buffer.concat(block.fragments, block.bytes));
  }

  private completeBlock(id: number, flags: number, fragment: Buffer): void {
    this.block = undefined;
    // Decoded even when the stream will be refused: the HPACK context must stay in step with the peer's.
    const block = this.decoder.decode(fragment, this.local.maxHeaderListBytes);
    this.onHeaders(id, (flags & Flag.END_STREAM) !== 0, block);
  }

  private readReset(id: number, payload: Buffer): void {
    if (id === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'RST_STREAM on stream 0');
    if (payload.length !== 4) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'RST_STREAM frame is not 4 bytes');
    const stream = this.streams.get(id);
    if (stream === undefined) {
      if (this.isIdle(id)) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `RST_STREAM on idle stream ${id}`);
      return;
    }
    stream.localEnded = stream.remoteEnded = true;
    this.forget(stream);
    this.onStreamReset(stream, payload.readUInt32BE(0), false);
  }

  private readSettings(flags: number, id: number, payload: Buffer): void {
    if (id !== 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'SETTINGS on a stream');
    if (flags & Flag.ACK) {
      if (payload.length !== 0) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS ACK with a payload');
      this.settingsAcked = true;
      return;
    }
    if (payload.length % 6 !== 0) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS payload is not a multiple of 6 bytes');
    for (let at = 0; at < payload.length; at += 6) this.applySetting(payload.readUInt16BE(at), payload.readUInt32BE(at + 2));
    this.writeFrame(SETTINGS_ACK);
    this.onSettings();
  }

  private applySetting(id: number, value: number): void {
    switch (id) {
      case Setting.HEADER_TABLE_SIZE:
        this.encoder.setPeerTableSize(value);
        return;
      case Setting.ENABLE_PUSH:
        if (value > 1) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'SETTINGS_ENABLE_PUSH must be 0 or 1');
        return;
      case Setting.MAX_CONCURRENT_STREAMS:
        this.peer.maxConcurrentStreams = value;
        return;
      case Setting.INITIAL_WINDOW_SIZE: {
        if (value > MAX_WINDOW) throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'SETTINGS_INITIAL_WINDOW_SIZE too large');
        const delta = value - this.peer.initialWindow;
        this.peer.initialWindow = value;
        for (const stream of this.streams.values()) {
          stream.sendWindow += delta;
          if (stream.sendWindow > MAX_WINDOW) throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'a stream window overflowed');
        }
        if (delta > 0) this.pumpBlocked();
        return;
      }
      case Setting.MAX_FRAME_SIZE:
        if (value < DEFAULT_MAX_FRAME_SIZE || value > MAX_FRAME_SIZE_LIMIT) {
          throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `SETTINGS_MAX_FRAME_SIZE ${value} out of range`);
        }
        this.peer.maxFrameSize = value;
        return;
      case Setting.MAX_HEADER_LIST_SIZE:
        this.peer.maxHeaderListSize = value;
        return;
      default:
        // Unknown settings are ignored (RFC 9113 §6.5.2).
        return;
    }
  }

  private readPing(flags: number, id: number, payload: Buffer): void {
    if (id !== 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'PING on a stream');
    if (payload.length !== 8) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'PING frame is not 8 bytes');
    if (flags & Flag.ACK) this.onPingAck();
    else this.writeFrame(pingFrame(payload, true));
  }

  private readWindowUpdate(id: number, payload: Buffer): void {
    if (payload.length !== 4) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'WINDOW_UPDATE frame is not 4 bytes');
    const increment = payload.readUInt32BE(0) & 0x7fffffff;
    if (id === 0) {
      if (increment === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0 on the connection');
      this.sendWindow += increment;
      if (this.sendWindow > MAX_WINDOW) throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'the connection window overflowed');
      this.pumpBlocked();
      return;
    }
    const stream = this.streams.get(id);
    if (stream === undefined) {
      if (this.isIdle(id)) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `WINDOW_UPDATE on idle stream ${id}`);
      return;
    }
    if (increment === 0) throw new StreamError(id, ErrorCode.PROTOCOL_ERROR, `WINDOW_UPDATE of 0 on stream ${id}`);
    stream.sendWindow += increment;
    if (stream.sendWindow > MAX_WINDOW) throw new StreamError(id, ErrorCode.FLOW_CONTROL_ERROR, `the window of stream ${id} overflowed`);
    this.pump(stream);
  }

  // ---- flow control, receiving side ----
  /** `bytes` received on `stream` have been dealt with: the peer may send that much more (batched). */
  consumed(stream: S, bytes: number): void {
    if (this.closed || bytes === 0) return;
    this.creditConnection(bytes);
    if (stream.remoteEnded) return;
    stream.recvUncredited += bytes;
    if (stream.recvUncredited * 2 >= this.local.streamWindow) {
      this.writeFrame(windowUpdateFrame(stream.id, stream.recvUncredited));
      stream.recvWindow += stream.recvUncredited;
      stream.recvUncredited = 0;
    }
  }

  private creditConnection(bytes: number): void {
    this.recvUncredited += bytes;
    if (this.recvUncredited * 2 >= this.local.connectionWindow) {
      this.writeFrame(windowUpdateFrame(0, this.recvUncredited));
      this.recvWindow += this.recvUncredited;
      this.recvUncredited = 0;
    }
  }

  // ---- output ----
  protected writeFrame(frame: Buffer): void {
    if (this.closed) return;
    this.outbox.push(frame);
    this.outboxBytes += frame.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(() => this.flush());
    }
  }

  /** Writes everything queued this tick in one go. */
  flush(): void {
    this.flushScheduled = false;
    const out = this.outbox;
    if (out.length === 0 || this.closed) return;
    this.outbox = [];
    const bytes = this.outboxBytes;
    this.outboxBytes = 0;
    if (out.length === 1 || bytes < JOIN_BELOW_BYTES) {
      this.socket.write(out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out, bytes));
      return;
    }
    this.socket.cork();
    for (const piece of out) this.socket.write(piece);
    this.socket.uncork();
  }

  /** Bytes queued for the socket and not yet handed to the kernel. */
  get backlogBytes(): number {
    return this.outboxBytes + this.socket.writableLength;
  }

  sendHeaders(stream: S, fields: readonly string[], end: boolean, neverIndexed?: readonly number[]): void {
    if (stream.localEnded || this.closed) return;
    if (end) stream.localEnded = true;
    if (stream.out !== undefined || stream.id === 0) {
      stream.out ??= [];
      stream.out.push({ fields, end, neverIndexed });
      return;
    }
    for (const frame of headerFrames(this.encoder, stream.id, fields, end, this.peer.maxFrameSize, neverIndexed)) this.writeFrame(frame);
    if (end) this.closeIfDone(stream);
  }

  /**
   * Queues `data` on the stream; it goes out as the windows allow, and `onSent` reports each part sent. False
   * (and nothing queued) when the stream has already ended on this side.
   */
  sendData(stream: S, data: Buffer, end: boolean, onSent?: (bytes: number) => void): boolean {
    if (stream.localEnded || this.closed) return false;
    if (end) stream.localEnded = true;
    const item: OutData = { data, end, onSent };
    if (stream.out === undefined) stream.out = [item];
    else stream.out.push(item);
    this.pump(stream);
    return true;
  }

  protected pump(stream: S): void {
    const out = stream.out;
    if (out === undefined || this.closed || stream.id === 0) return;
    while (out.length > 0) {
      const item = out[0] as OutItem;
      if (!('data' in item)) {
        for (const frame of headerFrames(this.encoder, stream.id, item.fields, item.end, this.peer.maxFrameSize, item.neverIndexed)) this.writeFrame(frame);
        out.shift();
        continue;
      }
      const length = item.data.length;
      const room = Math.min(stream.sendWindow, this.sendWindow, this.peer.maxFrameSize);
      if (length > 0 && room <= 0) {
        this.blocked.add(stream);
        return;
      }
      const take = Math.min(length, room);
      const last = take === length;
      const header = Buffer.allocUnsafe(9);
      header[0] = (take >>> 16) & 0xff;
      header[1] = (take >>> 8) & 0xff;
      header[2] = take & 0xff;
      header[3] = FrameType.DATA;
      header[4] = last && item.end ? Flag.END_STREAM : 0;
      header.writeUInt32BE(stream.id, 5);
      this.writeFrame(header);
      if (take > 0) this.writeFrame(last ? item.data : item.data.subarray(0, take));
      stream.sendWindow -= take;
      this.sendWindow -= take;
      if (item.onSent !== undefined && take > 0) this.credit(item.onSent, take);
      if (last) out.shift();
      else item.data = item.data.subarray(take);
    }
    stream.out = undefined;
    this.blocked.delete(stream);
    this.closeIfDone(stream);
    this.onStreamDrained();
  }

  /** A stream's queued output has all been written. */
  protected onStreamDrained(): void {}

  protected hasQueuedOutput(): boolean {
    for (const stream of this.streams.values()) if (stream.out !== undefined) return true;
    return false;
  }

  private pumpBlocked(): void {
    for (const stream of [...this.blocked]) {
      if (this.sendWindow <= 0) return;
      this.blocked.delete(stream);
      this.pump(stream);
    }
  }

  /** Relayed bytes are credited to their source once written here, or after 'drain' if the socket is full. */
  private credit(onSent: (bytes: number) => void, bytes: number): void {
    if (this.socket.writableLength + this.outboxBytes < CREDIT_HOLD_BYTES && this.heldCredits === undefined) {
      onSent(bytes);
      return;
    }
    (this.heldCredits ??= []).push(() => onSent(bytes));
  }

  private onDrain(): void {
    const held = this.heldCredits;
    this.heldCredits = undefined;
    if (held) for (const run of held) run();
    this.onWritable();
  }

  /** The socket took everything written so far. */
  protected onWritable(): void {}

  /** Ends a stream with RST_STREAM; queued output for it is dropped. */
  resetStream(stream: S, code: ErrorCodeValue): void {
    if (stream.closed) return;
    stream.localEnded = stream.remoteEnded = true;
    this.writeFrame(rstStreamFrame(stream.id, code));
    this.forget(stream);
  }

  protected closeIfDone(stream: S): void {
    if (stream.localEnded && stream.remoteEnded && stream.out === undefined) this.forget(stream);
  }

  protected forget(stream: S): void {
    if (stream.closed) return;
    stream.closed = true;
    stream.out = undefined;
    this.blocked.delete(stream);
    this.streams.delete(stream.id);
    this.onStreamClosed();
  }

  protected onStreamClosed(): void {}

  /** Sends GOAWAY; with an error code the connection then closes. */
  protected sendGoaway(lastStreamId: number, code: number, debug: string): void {
    if (this.closed) return;
    this.goawaySent = true;
    this.writeFrame(goawayFrame(lastStreamId, code, debug));
  }

  /** A connection error: GOAWAY with its code, then the connection closes (RFC 9113 §5.4.1). */
  fail(error: ConnectionError): void {
    if (this.closed) return;
    this.onProtocolError(error);
    this.reader.stop();
    this.sendGoaway(this.lastPeerStreamId(), error.code, error.message);
    this.flush();
    this.closed = true;
    this.socket.end();
    // A peer that never closes its side must not keep the socket (and its memory) forever.
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  protected abstract lastPeerStreamId(): number;
}
