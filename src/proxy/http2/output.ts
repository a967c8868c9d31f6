import type * as net from 'node:net';
import { DEFAULT_MAX_FRAME_SIZE, DEFAULT_WINDOW, Flag, FrameType, type ErrorCodeValue } from './frames';
import { goawayFrame, rstStreamFrame, windowUpdateFrame } from './frame-writers';
import { headerFrames } from './header-frames';
import { HpackEncoder } from './hpack-encoder';
import { JOIN_FROM_PIECES, joinSmall } from './pieces';

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
  /** CONTINUATION frames one header block may take; more end the connection (ENHANCE_YOUR_CALM). */
  readonly maxContinuationFrames?: number;
  /** Entries one SETTINGS frame may carry; more end the connection (ENHANCE_YOUR_CALM). */
  readonly maxSettingsEntries?: number;
  /** DATA, HEADERS and CONTINUATION frames in a row that carry nothing and end nothing; more end the connection. */
  readonly maxEmptyFrames?: number;
}

/** The peer's settings as last received (RFC 9113 §6.5.2 defaults until then). */
export interface PeerSettings {
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
  /** Who reset the stream, if it was reset: frames arriving after it are treated as RFC 9113 §5.1 says. */
  resetBy: 'peer' | 'local' | undefined = undefined;
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
/** A tick's output up to this size is joined into one buffer; beyond, only its small pieces are. */
const JOIN_BELOW_BYTES = 16 * 1024;
/** Pieces smaller than this are copied together; larger ones (relayed data) go out as they are. */
const COPY_BELOW_BYTES = 2048;

/**
 * The sending half of an HTTP/2 connection: frames go out through a per-tick outbox (one write per tick),
 * DATA as the peer's windows allow, and the peer is credited (WINDOW_UPDATE, batched) for what was dealt with.
 */
export abstract class Http2Output<S extends Http2Stream> {
  protected readonly streams = new Map<number, S>();
  protected readonly peer: PeerSettings = {
    maxConcurrentStreams: Infinity,
    initialWindow: DEFAULT_WINDOW,
    maxFrameSize: DEFAULT_MAX_FRAME_SIZE,
    maxHeaderListSize: Infinity,
  };
  protected readonly encoder = new HpackEncoder();
  protected sendWindow = DEFAULT_WINDOW;
  protected recvWindow = DEFAULT_WINDOW;
  private recvUncredited = 0;
  private outbox: Buffer[] = [];
  private outboxBytes = 0;
  private flushScheduled = false;
  private readonly blocked = new Set<S>();
  private heldCredits: (() => void)[] | undefined;
  /** DATA bytes queued on streams, waiting for the peer's windows (what the socket holds is not counted). */
  protected queuedDataBytes = 0;
  /**
   * Credit the peer's connection window as soon as DATA arrives, and only its stream windows once the bytes are
   * dealt with: on a connection shared by many callers (the runtime's), one slow consumer must not hold back the
   * others' data. What each stream may hold is still bounded by its own window.
   */
  protected creditOnReceipt = false;
  /** Set once the connection is going away: no new streams, frames still flow for the open ones. */
  goawaySent = false;
  closed = false;

  constructor(
    readonly socket: net.Socket,
    protected readonly local: LocalSettings,
  ) {
    socket.on('drain', () => this.onDrain());
  }

  // ---- flow control, receiving side ----
  /** `bytes` received on `stream` have been dealt with: the peer may send that much more (batched). */
  consumed(stream: S, bytes: number): void {
    if (this.closed || bytes === 0) return;
    if (!this.creditOnReceipt) this.creditConnection(bytes);
    if (stream.remoteEnded) return;
    stream.recvUncredited += bytes;
    if (stream.recvUncredited * 2 >= this.local.streamWindow) {
      this.writeFrame(windowUpdateFrame(stream.id, stream.recvUncredited));
      stream.recvWindow += stream.recvUncredited;
      stream.recvUncredited = 0;
    }
  }

  protected creditConnection(bytes: number): void {
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
    // One write per tick: a Writable costs more per piece than copying a few KB does.
    if (out.length === 1 || bytes <= JOIN_BELOW_BYTES) {
      this.socket.write(out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out, bytes));
      return;
    }
    // More than that: small pieces (frame headers, control frames) joined, relayed data passed as it is (never
    // copied), in one vectored write.
    this.socket.cork();
    let run: Buffer[] = [];
    let runBytes = 0;
    for (const piece of out) {
      if (piece.length < COPY_BELOW_BYTES) {
        run.push(piece);
        runBytes += piece.length;
        continue;
      }
      if (run.length > 0) this.socket.write(run.length === 1 ? (run[0] as Buffer) : Buffer.concat(run, runBytes));
      run = [];
      runBytes = 0;
      this.socket.write(piece);
    }
    if (run.length > 0) this.socket.write(run.length === 1 ? (run[0] as Buffer) : Buffer.concat(run, runBytes));
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
    this.queuedDataBytes += data.length;
    const out = stream.out;
    if (out === undefined) {
      stream.out = [{ data, end, onSent }];
    } else if (!this.joinQueued(out, data, end, onSent)) {
      out.push({ data, end, onSent });
    }
    this.pump(stream);
    return true;
  }

  /** Small data behind a long queue is copied onto the last item (never the one being sent): see pieces.ts. */
  private joinQueued(out: OutItem[], data: Buffer, end: boolean, onSent: ((bytes: number) => void) | undefined): boolean {
    if (out.length < JOIN_FROM_PIECES || end) return false;
    const last = out[out.length - 1] as OutItem;
    if (!('data' in last) || last.end || last.onSent !== onSent) return false;
    const joined = joinSmall(last.data, data);
    if (joined === undefined) return false;
    last.data = joined;
    return true;
  }

  protected pump(stream: S): void {
    const out = stream.out;
    if (out === undefined || this.closed || stream.id === 0) return;
    while (out.length > 0) {
      const item = out[0] as OutItem;
      if (!('data' in item)) {
        for (const frame of headerFrames(this.encoder, stream.id, item.fields, item.end, this.peer.maxFrameSize, item.neverIndexed))
          this.writeFrame(frame);
        out.shift();
        continue;
      }
      const length = item.data.length;
      const room = Math.min(stream.sendWindow, this.sendWindow, this.peer.maxFrameSize);
      if (length > 0 && room <= 0) {
        // Waiting for the connection's window: its WINDOW_UPDATE wakes the stream. Waiting for the stream's own
        // window: the stream's WINDOW_UPDATE (or a larger initial window) does.
        if (stream.sendWindow > 0) this.blocked.add(stream);
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
      this.queuedDataBytes -= take;
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

  /**
   * The connection's window opened: streams waiting for it send, in the order they started waiting, until it is
   * used up. A stream that blocks again is added back behind the check that ends the loop, and a peer granting one
   * byte at a time wakes one stream per WINDOW_UPDATE, not all of them.
   */
  protected pumpBlocked(): void {
    for (const stream of this.blocked) {
      if (this.sendWindow <= 0) return;
      this.blocked.delete(stream);
      this.pump(stream);
    }
  }

  /** Every stream's window grew (a larger SETTINGS_INITIAL_WINDOW_SIZE): each stream with data waiting sends. */
  protected pumpAll(): void {
    for (const stream of this.streams.values()) if (stream.out !== undefined) this.pump(stream);
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
    stream.resetBy ??= 'local';
    this.writeFrame(rstStreamFrame(stream.id, code));
    this.forget(stream);
  }

  protected closeIfDone(stream: S): void {
    if (stream.localEnded && stream.remoteEnded && stream.out === undefined) this.forget(stream);
  }

  protected forget(stream: S): void {
    if (stream.closed) return;
    stream.closed = true;
    if (stream.out !== undefined) for (const item of stream.out) if ('data' in item) this.queuedDataBytes -= item.data.length;
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
}
