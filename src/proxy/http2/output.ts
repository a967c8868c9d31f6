import type * as net from 'node:net';
import { DEFAULT_MAX_FRAME_SIZE, DEFAULT_WINDOW, Flag, FrameType, type ErrorCodeValue } from './frames';
import { goawayFrame, rstStreamFrame, windowUpdateFrame } from './frame-writers';
import { writeHeaderFrames } from './header-frames';
import { HpackEncoder } from './hpack-encoder';
import type { LocalSettings } from './local-settings';
import { Outbox } from './outbox';
import type { PeerSettings } from './peer-settings';
import { JOIN_FROM_PIECES, joinSmall } from './pieces';
import type { Http2Stream, OutItem } from './stream';

/** Above this many bytes waiting in the socket, credits for relayed data wait for 'drain'. */
const CREDIT_HOLD_BYTES = 64 * 1024;

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
  private readonly outbox = new Outbox();
  private flushScheduled = false;
  private readonly flushNow = (): void => this.flush();
  private readonly blocked = new Set<S>();
  /** Credits waiting for 'drain', by whom to credit: a large answer waits frame after frame, one entry for all. */
  private heldCredits: Map<(bytes: number) => void, number> | undefined;
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
    this.outbox.append(frame);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    process.nextTick(this.flushNow);
  }

  /** A header block encoded straight into the outbox behind its HEADERS frame header (see header-frames.ts). */
  private writeHeaderBlock(streamId: number, fields: readonly string[], end: boolean, neverIndexed: readonly number[] | undefined): void {
    if (this.closed) return;
    writeHeaderFrames(this.outbox, this.encoder, streamId, fields, end, this.peer.maxFrameSize, neverIndexed);
    this.scheduleFlush();
  }

  /** Writes everything queued this tick in one go. */
  flush(): void {
    this.flushScheduled = false;
    if (this.outbox.bytes === 0 || this.closed) return;
    const pieces = this.outbox.take();
    if (pieces.length === 1) {
      this.socket.write(pieces[0] as Buffer);
      return;
    }
    // Relayed data goes out as it came (never copied), with what is around it, in one vectored write.
    this.socket.cork();
    for (const piece of pieces) this.socket.write(piece);
    this.socket.uncork();
  }

  /** Bytes queued for the socket and not yet handed to the kernel. */
  get backlogBytes(): number {
    return this.outbox.bytes + this.socket.writableLength;
  }

  sendHeaders(stream: S, fields: readonly string[], end: boolean, neverIndexed?: readonly number[]): void {
    if (stream.localEnded || this.closed) return;
    if (end) stream.localEnded = true;
    if (stream.out !== undefined || stream.id === 0) {
      stream.out ??= [];
      stream.out.push({ fields, end, neverIndexed });
      return;
    }
    this.writeHeaderBlock(stream.id, fields, end, neverIndexed);
    if (end) this.closeIfDone(stream);
  }

  /**
   * Queues `data` on the stream; it goes out as the windows allow, and `onSent` reports each part sent. False
   * (and nothing queued) when the stream has already ended on this side.
   */
  sendData(stream: S, data: Buffer, end: boolean, onSent?: (bytes: number) => void): boolean {
    if (stream.localEnded || this.closed) return false;
    if (end) stream.localEnded = true;
    const out = stream.out;
    if (out === undefined && stream.id !== 0 && data.length <= Math.min(stream.sendWindow, this.sendWindow, this.peer.maxFrameSize)) {
      // Nothing queued ahead and the windows allow it all: out at once, nothing queued.
      this.writeData(stream, data, end, onSent);
      this.closeIfDone(stream);
      this.onStreamDrained();
      return true;
    }
    this.queuedDataBytes += data.length;
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
        this.writeHeaderBlock(stream.id, item.fields, item.end, item.neverIndexed);
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
      this.writeData(stream, last ? item.data : item.data.subarray(0, take), last && item.end, item.onSent);
      this.queuedDataBytes -= take;
      if (last) out.shift();
      else item.data = item.data.subarray(take);
    }
    stream.out = undefined;
    if (this.blocked.size > 0) this.blocked.delete(stream);
    this.closeIfDone(stream);
    this.onStreamDrained();
  }

  /** One DATA frame, the windows allowing: written, counted against the windows, its source credited. */
  private writeData(stream: S, data: Buffer, end: boolean, onSent: ((bytes: number) => void) | undefined): void {
    const length = data.length;
    this.outbox.frameHeader(length, FrameType.DATA, end ? Flag.END_STREAM : 0, stream.id);
    if (length > 0) this.outbox.append(data);
    this.scheduleFlush();
    stream.sendWindow -= length;
    this.sendWindow -= length;
    if (onSent !== undefined && length > 0) this.credit(onSent, length);
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
    let held = this.heldCredits;
    if (held === undefined) {
      if (this.socket.writableLength + this.outbox.bytes < CREDIT_HOLD_BYTES) {
        onSent(bytes);
        return;
      }
      held = this.heldCredits = new Map();
    }
    held.set(onSent, (held.get(onSent) ?? 0) + bytes);
  }

  private onDrain(): void {
    const held = this.heldCredits;
    this.heldCredits = undefined;
    if (held) for (const [onSent, bytes] of held) onSent(bytes);
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
