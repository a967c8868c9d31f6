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
  Setting,
  StreamError,
  dataPayload,
  headersFragment,
} from './frames';
import { SETTINGS_ACK, pingFrame, rstStreamFrame, settingsFrame, windowUpdateFrame } from './frame-writers';
import { HpackDecoder, type HeaderBlock } from './hpack-decoder';
import { Http2Output, type Http2Stream } from './output';

/**
 * One HTTP/2 connection as the relay sees it (RFC 9113): frames in through a FrameReader, header blocks through
 * a per-connection HPACK decoder, frames out through Http2Output. Protocol errors become stream errors
 * (RST_STREAM) or connection errors (GOAWAY) as the RFC says. Subclasses add the role: the side facing
 * clients, the side facing a runtime.
 */
export abstract class Http2Connection<S extends Http2Stream> extends Http2Output<S> {
  protected readonly reader = new FrameReader(this);
  private readonly decoder = new HpackDecoder();
  private settingsAcked = false;
  private block: { streamId: number; flags: number; fragments: Buffer[]; bytes: number } | undefined;

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
    this.socket.setTimeout(1000, () => this.socket.destroy());
  }

  protected abstract lastPeerStreamId(): number;
}
