import type * as net from 'node:net';
import { CONNECTION_PREFACE, ConnectionError, ErrorCode, Setting, type StreamError } from './http2/frames';
import type { ClosedHow } from './http2/closed-streams';
import { Http2Connection } from './http2/connection';
import type { LocalSettings } from './http2/local-settings';
import { Http2Stream } from './http2/stream';
import type { HeaderBlock } from './http2/hpack-decoder';

/** Why a stream to the runtime ended without (the rest of) a response. */
export interface StreamFailure {
  /** `refused`: the runtime never processed the stream (GOAWAY past it, REFUSED_STREAM); safe to retry. */
  readonly kind: 'reset' | 'refused' | 'lost';
  readonly code?: number;
  readonly error?: Error;
}

/** Receives what the runtime sends on one stream. */
export interface UpstreamHandler {
  onResponseHeaders(block: HeaderBlock, end: boolean): void;
  onResponseData(data: Buffer, end: boolean): void;
  onStreamFailed(failure: StreamFailure): void;
}

export class UpstreamStream extends Http2Stream {
  constructor(
    readonly handler: UpstreamHandler,
    sendWindow: number,
    recvWindow: number,
  ) {
    super(0, sendWindow, recvWindow);
  }
}

export interface RuntimeConnectionEvents {
  onClosed(connection: RuntimeConnection, error: Error | undefined): void;
  onProtocolError(error: ConnectionError | StreamError): void;
}

/**
 * The proxy's connection to one runtime: the client side of HTTP/2, one stream per relayed call, shared by
 * every client connection. Streams beyond the runtime's SETTINGS_MAX_CONCURRENT_STREAMS wait for a free slot.
 */
export class RuntimeConnection extends Http2Connection<UpstreamStream> {
  private nextId = 1;
  private readonly waiting: UpstreamStream[] = [];
  private lastError: Error | undefined;
  /** The runtime sent GOAWAY: no new streams here. */
  draining = false;
  // Shared by every client's calls: a client slow to read its responses holds back only its own streams.
  protected override creditOnReceipt = true;

  constructor(
    socket: net.Socket,
    local: LocalSettings,
    private readonly events: RuntimeConnectionEvents,
  ) {
    super(socket, local);
    socket.setNoDelay?.(true);
    this.writeFrame(CONNECTION_PREFACE);
    for (const frame of this.greeting([[Setting.ENABLE_PUSH, 0]])) this.writeFrame(frame);
    // Its reads come from whoever made the socket, through receive() (see socket-reads.ts).
    socket.on('error', (err: Error) => {
      this.lastError = err;
    });
    socket.on('close', () => this.onSocketClosed());
  }

  get usable(): boolean {
    return !this.closed && !this.draining && !this.goawaySent;
  }

  get activeStreams(): number {
    return this.streams.size + this.waiting.length;
  }

  /** Opens a stream for a call and sends its request headers (now, or once a slot is free). */
  open(fields: readonly string[], handler: UpstreamHandler): UpstreamStream {
    const [send, recv] = this.newStreamWindows();
    const stream = new UpstreamStream(handler, send, recv);
    if (this.streams.size < this.peer.maxConcurrentStreams) {
      this.start(stream);
      this.sendHeaders(stream, fields, false);
    } else {
      // Queued on the stream until a slot frees up and it gets its id.
      this.sendHeaders(stream, fields, false);
      this.waiting.push(stream);
    }
    return stream;
  }

  /** Cancels a stream (RST_STREAM CANCEL), or drops it if it never started. */
  cancel(stream: UpstreamStream): void {
    const waiting = this.waiting.indexOf(stream);
    if (waiting >= 0) {
      this.waiting.splice(waiting, 1);
      stream.closed = true;
      return;
    }
    this.resetStream(stream, ErrorCode.CANCEL);
  }

  /** Closes the connection once its streams are done (on shutdown or replacement). */
  close(): void {
    if (this.closed) return;
    if (this.activeStreams === 0) this.socket.end();
    else this.draining = true;
  }

  private start(stream: UpstreamStream): void {
    stream.id = this.nextId;
    this.nextId += 2;
    this.streams.set(stream.id, stream);
    this.pump(stream);
  }

  protected override onStreamClosed(): void {
    while (this.streams.size < this.peer.maxConcurrentStreams && !this.closed) {
      const next = this.waiting.shift();
      if (next === undefined) break;
      this.start(next);
    }
    if (this.draining && this.activeStreams === 0) this.socket.end();
  }

  protected override onSettings(): void {
    this.onStreamClosed();
  }

  protected onHeaders(streamId: number, endStream: boolean, block: HeaderBlock): void {
    const stream = this.streams.get(streamId);
    if (stream === undefined) {
      if (this.closedHow(streamId) === 'idle')
        throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `HEADERS on stream ${streamId} the proxy never opened`);
      return;
    }
    if (endStream) stream.remoteEnded = true;
    stream.handler.onResponseHeaders(block, endStream);
    if (endStream) this.closeIfDone(stream);
  }

  protected onData(stream: UpstreamStream, data: Buffer, endStream: boolean): void {
    stream.handler.onResponseData(data, endStream);
  }

  protected onStreamReset(stream: UpstreamStream, code: number, local: boolean): void {
    const refused = !local && code === ErrorCode.REFUSED_STREAM;
    stream.handler.onStreamFailed({ kind: refused ? 'refused' : 'reset', code });
  }

  protected onGoaway(lastStreamId: number): void {
    this.draining = true;
    // Streams past the last one the runtime will process never reached it.
    for (const stream of [...this.streams.values()]) {
      if (stream.id <= lastStreamId) continue;
      this.forget(stream);
      stream.handler.onStreamFailed({ kind: 'refused' });
    }
    for (const stream of this.waiting.splice(0)) stream.handler.onStreamFailed({ kind: 'refused' });
    if (this.activeStreams === 0) this.socket.end();
  }

  protected closedHow(id: number): ClosedHow {
    // The runtime opens no streams (push is off); frames on streams of ours that ended are dropped.
    return id >= this.nextId || id % 2 === 0 ? 'idle' : 'forgotten';
  }

  protected lastPeerStreamId(): number {
    // The runtime opens no streams of its own.
    return 0;
  }

  protected onUnopenedStreamReset(): void {
    // Frames on streams of ours that ended are dropped; there is nothing to account.
  }

  protected onProtocolError(error: ConnectionError | StreamError): void {
    this.events.onProtocolError(error);
    if (error instanceof ConnectionError) this.lastError = new Error(`HTTP/2 protocol error: ${error.message}`);
  }

  private onSocketClosed(): void {
    this.closed = true;
    this.reader.stop();
    const error = this.lastError ?? new Error('connection closed');
    const streams = [...this.streams.values(), ...this.waiting.splice(0)];
    this.streams.clear();
    // Health first, so the calls failed below name the cause.
    this.events.onClosed(this, this.lastError);
    for (const stream of streams) {
      stream.closed = true;
      stream.handler.onStreamFailed({ kind: 'lost', error });
    }
  }
}
