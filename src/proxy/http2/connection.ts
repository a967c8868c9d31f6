import { ConnectionError, DEFAULT_WINDOW, ErrorCode, Flag, FrameReader, FrameType, MAX_WINDOW, StreamError, dataPayload } from './frames';
import { SETTINGS_ACK, pingFrame, rstStreamFrame } from './frame-writers';
import { EmptyFrames } from './empty-frames';
import { closedStreamError, type ClosedHow } from './closed-streams';
import { HeaderBlockReader, type CompleteBlock } from './header-block-reader';
import { applyPeerSettings } from './peer-settings';
import type { HeaderBlock } from './hpack-decoder';
import {
  DEFAULT_MAX_CONTINUATION_FRAMES,
  DEFAULT_MAX_EMPTY_FRAMES,
  DEFAULT_MAX_SETTINGS_ENTRIES,
  greetingFrames,
  type LocalSettings,
} from './local-settings';
import { Http2Output } from './output';
import type { Http2Stream } from './stream';

/**
 * One HTTP/2 connection as the relay sees it (RFC 9113): frames in through a FrameReader, header blocks through
 * a per-connection HPACK decoder, frames out through Http2Output. Protocol errors become stream errors
 * (RST_STREAM) or connection errors (GOAWAY) as the RFC says. Subclasses add the role: the side facing
 * clients, the side facing a runtime.
 */
export abstract class Http2Connection<S extends Http2Stream> extends Http2Output<S> {
  protected readonly reader = new FrameReader(this);
  private readonly blocks: HeaderBlockReader;
  private settingsAcked = false;
  private readonly emptyFrames: EmptyFrames;
  private readonly maxSettingsEntries: number;

  constructor(socket: ConstructorParameters<typeof Http2Output>[0], local: LocalSettings) {
    super(socket, local);
    this.blocks = new HeaderBlockReader(local.maxHeaderListBytes, local.maxContinuationFrames ?? DEFAULT_MAX_CONTINUATION_FRAMES);
    this.emptyFrames = new EmptyFrames(local.maxEmptyFrames ?? DEFAULT_MAX_EMPTY_FRAMES);
    this.maxSettingsEntries = local.maxSettingsEntries ?? DEFAULT_MAX_SETTINGS_ENTRIES;
  }

  /** Our SETTINGS frame and the connection window raise, sent first on every connection. */
  protected greeting(extra: readonly (readonly [number, number])[]): Buffer[] {
    this.recvWindow = Math.max(DEFAULT_WINDOW, this.local.connectionWindow);
    return greetingFrames(this.local, extra);
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
  /** What became of stream `id`, which is not open: decides how a frame on it is answered. */
  protected abstract closedHow(id: number): ClosedHow;
  protected abstract onProtocolError(error: ConnectionError | StreamError): void;
  /** The peer went past one of this side's limits (a connection error naming it); counted as a protocol error here. */
  protected onLimitExceeded(error: ConnectionError): void {
    this.onProtocolError(error);
  }
  /** A stream error ended a stream this side never opened (a refused request, a frame on a closed stream). */
  protected abstract onUnopenedStreamReset(id: number): void;
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
      if (this.blocks.inProgress && type !== FrameType.CONTINUATION) {
        throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'a header block was interrupted by another frame');
      }
      if (type <= FrameType.HEADERS) this.emptyFrames.count(type, flags, payload);
      switch (type) {
        case FrameType.DATA:
          this.readData(flags, id, payload);
          return;
        case FrameType.HEADERS:
          this.onBlock(this.blocks.headers(flags, id, payload));
          return;
        case FrameType.CONTINUATION:
          this.onBlock(this.blocks.continuation(flags, id, payload));
          return;
        case FrameType.PRIORITY:
          // Priorities are not acted on (no priority tree is kept), only checked.
          if (id === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'PRIORITY on stream 0');
          if (payload.length !== 5) throw new StreamError(id, ErrorCode.FRAME_SIZE_ERROR, 'PRIORITY frame is not 5 bytes');
          if ((payload.readUInt32BE(0) & 0x7fffffff) === id) throw selfDependency(id);
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
          this.onGoaway(
            payload.readUInt32BE(0) & 0x7fffffff,
            payload.readUInt32BE(4),
            payload.toString('utf8', 8, Math.min(payload.length, 264)),
          );
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
        stream.resetBy ??= 'local';
        this.forget(stream);
        this.onStreamReset(stream, err.code, true);
      } else {
        this.onUnopenedStreamReset(err.streamId);
      }
    }
  }

  /** A frame on a stream that is not open: ignored, or the error RFC 9113 §5.1 asks for. */
  protected onClosedStream(what: string, id: number): void {
    const error = closedStreamError(what, id, this.closedHow(id));
    if (error !== undefined) throw error;
  }

  private readData(flags: number, id: number, payload: Buffer): void {
    if (id === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'DATA on stream 0');
    this.recvWindow -= payload.length;
    if (this.recvWindow < 0) throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'the peer overran the connection window');
    if (this.creditOnReceipt) this.creditConnection(payload.length);
    const stream = this.streams.get(id);
    if (stream === undefined || stream.remoteEnded) {
      // Whatever happens to them, dropped bytes still count against the connection's window: credit them back.
      if (!this.creditOnReceipt) this.creditConnection(payload.length);
      if (stream !== undefined) throw new StreamError(id, ErrorCode.STREAM_CLOSED, `DATA after the end of stream ${id}`);
      this.onClosedStream('DATA', id);
      return;
    }
    stream.recvWindow -= payload.length;
    if (stream.recvWindow < 0) {
      if (!this.creditOnReceipt) this.creditConnection(payload.length);
      throw new StreamError(id, ErrorCode.FLOW_CONTROL_ERROR, `the peer overran the window of stream ${id}`);
    }
    const data = dataPayload(flags, payload);
    const padding = payload.length - data.length;
    const end = (flags & Flag.END_STREAM) !== 0;
    if (end) stream.remoteEnded = true;
    if (padding > 0) this.consumed(stream, padding);
    try {
      this.onData(stream, data, end);
    } catch (err) {
      // Refused (a stream error): its bytes will never be dealt with, but they count against the connection.
      if (!this.creditOnReceipt) this.creditConnection(data.length);
      throw err;
    }
    if (end) this.closeIfDone(stream);
  }

  private onBlock(complete: CompleteBlock | undefined): void {
    if (complete === undefined) return;
    if (complete.selfDependent) throw selfDependency(complete.streamId);
    this.onHeaders(complete.streamId, complete.endStream, complete.block);
  }

  /** Bytes of a header block still arriving (HEADERS and its CONTINUATION frames so far). */
  protected get blockBytes(): number {
    return this.blocks.bytes;
  }

  private readReset(id: number, payload: Buffer): void {
    if (id === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'RST_STREAM on stream 0');
    if (payload.length !== 4) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'RST_STREAM frame is not 4 bytes');
    const stream = this.streams.get(id);
    if (stream === undefined) {
      this.onClosedStream('RST_STREAM', id);
      return;
    }
    stream.localEnded = stream.remoteEnded = true;
    stream.resetBy = 'peer';
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
    const initialWindow = applyPeerSettings(payload, this.maxSettingsEntries, this.peer, this.encoder);
    if (initialWindow !== undefined) this.applyInitialWindow(initialWindow);
    this.writeFrame(SETTINGS_ACK);
    this.onSettings();
  }

  private applyInitialWindow(value: number): void {
    const delta = value - this.peer.initialWindow;
    this.peer.initialWindow = value;
    if (delta === 0) return;
    for (const stream of this.streams.values()) {
      stream.sendWindow += delta;
      if (stream.sendWindow > MAX_WINDOW) throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'a stream window overflowed');
    }
    if (delta > 0) this.pumpAll();
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
      this.onClosedStream('WINDOW_UPDATE', id);
      return;
    }
    if (increment === 0) throw new StreamError(id, ErrorCode.PROTOCOL_ERROR, `WINDOW_UPDATE of 0 on stream ${id}`);
    stream.sendWindow += increment;
    if (stream.sendWindow > MAX_WINDOW) throw new StreamError(id, ErrorCode.FLOW_CONTROL_ERROR, `the window of stream ${id} overflowed`);
    this.pump(stream);
  }

  /** A connection error: GOAWAY with its code, then the connection closes (RFC 9113 §5.4.1). */
  fail(error: ConnectionError): void {
    if (this.closed) return;
    if (error.limit !== undefined) this.onLimitExceeded(error);
    else this.onProtocolError(error);
    this.reader.stop();
    this.sendGoaway(this.lastPeerStreamId(), error.code, error.message);
    this.flush();
    this.closed = true;
    this.socket.end();
    // A peer that never closes its side must not keep the socket (and its memory) forever.
    this.socket.setTimeout(1000, () => this.socket.destroy());
  }

  protected abstract lastPeerStreamId(): number;
}

/** RFC 9113 §5.3.1: a stream cannot depend on itself (in HEADERS or PRIORITY). */
function selfDependency(id: number): StreamError {
  return new StreamError(id, ErrorCode.PROTOCOL_ERROR, `stream ${id} depends on itself`);
}
