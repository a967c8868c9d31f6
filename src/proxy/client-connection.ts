import type * as net from 'node:net';
import { GrpcStatus } from '../errors';
import { statusFields } from './grpc-status';
import { ClientStream, type StreamHost } from './client-stream';
import { CONNECTION_PREFACE, ConnectionError, ErrorCode, FRAME_HEADER_BYTES, FrameType, MAX_WINDOW, StreamError } from './http2/frames';
import { pingFrame, rstStreamFrame } from './http2/frame-writers';
import { Http2Connection } from './http2/connection';
import type { LocalSettings } from './http2/output';
import type { HeaderBlock } from './http2/hpack-decoder';
import { headerFrames } from './http2/header-frames';
import { malformedRequest } from './request-headers';

/** Limits a client connection enforces; each one that triggers is counted under its name. */
export type LimitName =
  'handshakeTimeout' | 'handshakeBytes' | 'headerListBytes' | 'concurrentStreams' | 'connections' | 'idleTimeout' | 'heldRequestBytes';

export interface ClientConnectionOptions {
  readonly settings: LocalSettings & { readonly maxConcurrentStreams: number };
  readonly maxMessageBytes: number;
  /** Request bytes held for interceptors that read requests, across the connection's calls. */
  readonly maxHeldRequestBytes: number;
  readonly handshakeTimeoutMs: number;
  readonly handshakeMaxBytes: number;
  readonly onRequest: (stream: ClientStream) => void;
  readonly onLimit: (limit: LimitName) => void;
  readonly onProtocolError: (error: ConnectionError | StreamError) => void;
  readonly onObserverFault: (error: unknown) => void;
  readonly onClosed: (connection: ClientConnection) => void;
}

/** Reading stops while more than this is waiting to be written to a client that does not read. */
const PAUSE_ABOVE_BYTES = 4 * 1024 * 1024;
const GRACEFUL_PING = Buffer.from('cri-prxy', 'latin1');
const RECENTLY_CLOSED = 128;
const GRACEFUL_PING_WAIT_MS = 250;

/**
 * A connection from a client (kubelet, crictl): the server side of HTTP/2. Requests become ClientStreams the
 * server runs through the chain. The proxy's SETTINGS go out at once: gRPC-Go clients wait for them.
 */
export class ClientConnection extends Http2Connection<ClientStream> implements StreamHost {
  private phase: 'preface' | 'settings' | 'open' = 'preface';
  private prefaceSeen = 0;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private lastStreamId = 0;
  /** Calls started and not yet finished, reset streams included (their calls still run). */
  activeCalls = 0;
  /** When the last call finished (or the connection opened), for the idle timeout. */
  idleSince = Date.now();
  private heldBytes = 0;
  /** Ids of the last streams closed, so late frames on them are told apart from frames on ids never used. */
  private readonly recentlyClosed = new Set<number>();
  private paused = false;
  private draining: 'no' | 'announced' | 'final' = 'no';
  private shutdownRequested = false;
  readonly onObserverFault: (error: unknown) => void;

  constructor(
    socket: net.Socket,
    private readonly options: ClientConnectionOptions,
  ) {
    super(socket, options.settings);
    this.onObserverFault = options.onObserverFault;
    for (const frame of this.greeting([])) this.writeFrame(frame);
    socket.on('data', (chunk: Buffer) => this.onSocketData(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => this.onSocketClosed());
    this.handshakeTimer = setTimeout(() => this.abandon('handshakeTimeout'), options.handshakeTimeoutMs);
    this.handshakeTimer.unref();
  }

  get maxHeldBytes(): number {
    return this.options.maxHeldRequestBytes;
  }

  get admitted(): boolean {
    return this.phase === 'open';
  }

  /** Accounts request bytes held for an interceptor; false once the connection's limit is exceeded. */
  holdBytes(bytes: number): boolean {
    this.heldBytes += bytes;
    if (this.heldBytes <= this.options.maxHeldRequestBytes) return true;
    this.options.onLimit('heldRequestBytes');
    return false;
  }

  callEnded(_stream: ClientStream, heldBytes: number): void {
    this.heldBytes -= heldBytes;
    this.activeCalls--;
    if (this.activeCalls === 0) this.idleSince = Date.now();
    this.endIfDone();
  }

  private goawayReceived = false;

  /** Once going away and every call's last frame is written, the connection ends. */
  private endIfDone(): void {
    if (this.closed || (this.draining !== 'final' && !this.goawayReceived)) return;
    if (this.activeCalls > 0 || this.hasQueuedOutput()) return;
    this.flush();
    this.closed = true;
    this.socket.end();
  }

  protected override forget(stream: ClientStream): void {
    if (!stream.closed) this.remember(stream.id);
    super.forget(stream);
  }

  private remember(id: number): void {
    this.recentlyClosed.add(id);
    if (this.recentlyClosed.size > RECENTLY_CLOSED) this.recentlyClosed.delete(this.recentlyClosed.values().next().value as number);
  }

  protected override onStreamDrained(): void {
    this.endIfDone();
  }

  private onSocketData(chunk: Buffer): void {
    let bytes = chunk;
    if (this.phase === 'preface') {
      const take = Math.min(CONNECTION_PREFACE.length - this.prefaceSeen, bytes.length);
      if (!bytes.subarray(0, take).equals(CONNECTION_PREFACE.subarray(this.prefaceSeen, this.prefaceSeen + take))) {
        this.fail(new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'not an HTTP/2 client (bad connection preface)'));
        return;
      }
      this.prefaceSeen += take;
      bytes = bytes.subarray(take);
      if (this.prefaceSeen < CONNECTION_PREFACE.length) return;
      this.phase = 'settings';
    }
    if (!this.receive(bytes)) return;
    // Bytes before admission: the preface and whatever part of the first SETTINGS frame has arrived.
    if (this.phase !== 'open' && this.prefaceSeen + this.reader.heldBytes > this.options.handshakeMaxBytes) {
      this.abandon('handshakeBytes');
      return;
    }
    // A client that sends but does not read (a PING flood, say) stops being read until it catches up.
    if (this.backlogBytes > PAUSE_ABOVE_BYTES && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
  }

  protected override onWritable(): void {
    if (this.paused && this.backlogBytes <= PAUSE_ABOVE_BYTES) {
      this.paused = false;
      this.socket.resume();
    }
  }

  override onFrame(type: number, flags: number, id: number, payload: Buffer): void {
    if (this.phase === 'settings') {
      if (type !== FrameType.SETTINGS) {
        this.fail(new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'the client preface must start with SETTINGS'));
        return;
      }
      if (CONNECTION_PREFACE.length + FRAME_HEADER_BYTES + payload.length > this.options.handshakeMaxBytes) {
        this.abandon('handshakeBytes');
        return;
      }
    }
    super.onFrame(type, flags, id, payload);
  }

  protected override onSettings(): void {
    if (this.phase !== 'settings') return;
    this.phase = 'open';
    clearTimeout(this.handshakeTimer);
    if (this.shutdownRequested) this.shutdown();
  }

  protected onHeaders(id: number, endStream: boolean, block: HeaderBlock): void {
    const existing = this.streams.get(id);
    if (existing !== undefined) {
      // Trailers from the client: gRPC has no use for them, they only end the request.
      if (!endStream) throw new StreamError(id, ErrorCode.PROTOCOL_ERROR, 'a second header block without END_STREAM');
      existing.remoteEnded = true;
      existing.onClientData(Buffer.alloc(0), true);
      this.closeIfDone(existing);
      return;
    }
    if (id % 2 === 0 || id <= this.lastStreamId) {
      // Trailers racing the reset of a stream that just closed are ignored; reopening an old id is an error.
      if (this.recentlyClosed.has(id)) return;
      throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `HEADERS opening stream ${id} out of order`);
    }
    this.lastStreamId = id;
    // After the final GOAWAY, streams past its last stream id are ignored (RFC 9113 §6.8).
    if (this.draining === 'final' || this.closed) return;
    if (block.overLimit) {
      this.options.onLimit('headerListBytes');
      const message = `cri-proxy: request headers of ${block.listBytes} bytes exceed the limit of ${this.local.maxHeaderListBytes} (limits.maxHeaderListBytes)`;
      for (const frame of headerFrames(
        this.encoder,
        id,
        statusFields(GrpcStatus.RESOURCE_EXHAUSTED, message, true, 'LIMIT_EXCEEDED'),
        true,
        this.peer.maxFrameSize,
      ))
        this.writeFrame(frame);
      if (!endStream) this.writeFrame(rstStreamFrame(id, ErrorCode.NO_ERROR));
      this.remember(id);
      return;
    }
    if (this.activeCalls >= this.options.settings.maxConcurrentStreams) {
      // Refused streams are retried by gRPC clients; calls of reset streams still count until they end.
      this.options.onLimit('concurrentStreams');
      this.writeFrame(rstStreamFrame(id, ErrorCode.REFUSED_STREAM));
      this.remember(id);
      return;
    }
    const problem = malformedRequest(block.fields);
    if (problem !== undefined) throw new StreamError(id, ErrorCode.PROTOCOL_ERROR, `malformed request: ${problem}`);
    const stream = new ClientStream(this, id, this.newStreamWindows(), block.fields, this.options.maxMessageBytes);
    stream.remoteEnded = endStream;
    this.streams.set(id, stream);
    this.activeCalls++;
    this.options.onRequest(stream);
  }

  protected onData(stream: ClientStream, data: Buffer, endStream: boolean): void {
    stream.onClientData(data, endStream);
  }

  protected onStreamReset(stream: ClientStream): void {
    stream.cancel();
  }

  protected onGoaway(): void {
    // The client opens no more streams; those it has finish normally.
    this.goawayReceived = true;
    this.endIfDone();
  }

  protected override onPingAck(): void {
    if (this.draining === 'announced') this.finalGoaway();
  }

  protected isIdle(id: number): boolean {
    return id > this.lastStreamId || id % 2 === 0;
  }

  protected lastPeerStreamId(): number {
    return this.lastStreamId;
  }

  protected onProtocolError(error: ConnectionError | StreamError): void {
    this.options.onProtocolError(error);
  }

  /**
   * Graceful shutdown (as gRPC servers do it): GOAWAY with the largest stream id and a PING, then, once the PING
   * comes back (every stream the client opened before seeing the GOAWAY has arrived), the real GOAWAY. No stream
   * is refused on the way; the connection closes when its last call ends.
   */
  shutdown(): void {
    if (this.closed || this.draining !== 'no') return;
    if (!this.admitted) {
      // Not a client yet: the announcement follows its SETTINGS (the handshake timeout still applies).
      this.shutdownRequested = true;
      return;
    }
    this.draining = 'announced';
    this.sendGoaway(MAX_WINDOW, ErrorCode.NO_ERROR, 'shutting down');
    this.writeFrame(pingFrame(GRACEFUL_PING, false));
    // Some clients never answer a PING after a GOAWAY; a unix socket's round trip is far shorter than this.
    setTimeout(() => this.finalGoaway(), GRACEFUL_PING_WAIT_MS).unref();
  }

  private finalGoaway(): void {
    if (this.draining === 'final' || this.closed) return;
    this.draining = 'final';
    this.sendGoaway(this.lastStreamId, ErrorCode.NO_ERROR, 'shutting down');
    this.endIfDone();
  }

  /** Closes an idle connection (idle timeout, or room for a new one) with GOAWAY NO_ERROR. */
  closeIdle(limit: LimitName): void {
    this.options.onLimit(limit);
    this.draining = 'final';
    this.sendGoaway(this.lastStreamId, ErrorCode.NO_ERROR, limit);
    this.endIfDone();
  }

  private abandon(limit: LimitName): void {
    if (this.closed || this.phase === 'open') return;
    this.options.onLimit(limit);
    this.closed = true;
    this.socket.destroy();
  }

  private onSocketClosed(): void {
    clearTimeout(this.handshakeTimer);
    this.closed = true;
    this.reader.stop();
    for (const stream of [...this.streams.values()]) {
      this.forget(stream);
      stream.cancel();
    }
    this.options.onClosed(this);
  }
}
