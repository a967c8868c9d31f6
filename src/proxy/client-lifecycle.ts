/** A client connection's life apart from its requests: handshake, paced reading, graceful shutdown, idle close, end. */
import type * as net from 'node:net';
import { ClientHandshake } from './client-handshake';
import type { ClientStream } from './client-stream';
import { ConnectionError, ErrorCode, MAX_STREAM_ID, type ConnectionLimitName } from './http2/frames';
import { pingFrame } from './http2/frame-writers';
import { Http2Connection } from './http2/connection';
import type { LocalSettings } from './http2/local-settings';
import type { Limits } from './limits';

/** Limits a client connection enforces; each one that triggers is counted under its name. */
export type LimitName =
  ConnectionLimitName | 'handshakeTimeout' | 'handshakeBytes' | 'concurrentStreams' | 'connections' | 'idleTimeout' | 'heldRequestBytes';

/** Reading stops while more than this is waiting to be written to a client that does not read. */
const PAUSE_ABOVE_BYTES = 4 * 1024 * 1024;
const GRACEFUL_PING = Buffer.from('cri-prxy', 'latin1');
const GRACEFUL_PING_WAIT_MS = 250;

/** What the proxy announces to its clients and enforces on its frames, from the limits HTTP/2 itself carries. */
function announced(limits: Limits): LocalSettings {
  return {
    streamWindow: limits.streamWindowBytes,
    connectionWindow: limits.connectionWindowBytes,
    maxHeaderListBytes: limits.maxHeaderListBytes,
    maxConcurrentStreams: limits.maxConcurrentStreams,
    maxContinuationFrames: limits.maxContinuationFrames,
    maxSettingsEntries: limits.maxSettingsEntries,
    maxEmptyFrames: limits.maxEmptyFrames,
  };
}

/**
 * The life of a connection from a client, whatever its requests do (see ClientConnection): the handshake and its
 * limits, reading paused while the client does not take what it is sent, graceful shutdown (GOAWAY, PING, the
 * final GOAWAY), the idle close, and the end once every call has. The proxy's SETTINGS go out at once: gRPC-Go
 * clients wait for them.
 */
export abstract class ClientLifecycle extends Http2Connection<ClientStream> {
  private readonly handshake: ClientHandshake;
  /** Calls started and not yet finished, reset streams included (their calls still run). */
  activeCalls = 0;
  /** When the last call finished (or the connection opened), for the idle timeout. */
  idleSince = Date.now();
  private paused = false;
  protected draining: 'no' | 'announced' | 'final' = 'no';
  private shutdownRequested = false;
  private goawayReceived = false;

  constructor(socket: net.Socket, limits: Limits) {
    super(socket, announced(limits));
    for (const frame of this.greeting([])) this.writeFrame(frame);
    socket.on('data', (chunk: Buffer) => this.onSocketData(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => this.onSocketClosed());
    const { handshakeMaxBytes, handshakeTimeoutMs } = limits;
    this.handshake = new ClientHandshake(handshakeMaxBytes, handshakeTimeoutMs, () => this.abandon('handshakeTimeout'));
  }

  /** Requests whose headers came in the bytes just read go to the server. */
  protected abstract startArrived(): void;
  /** A limit triggered: counted under its name. */
  protected abstract countLimit(limit: LimitName): void;
  /** The socket closed: every stream has been cancelled. */
  protected abstract onConnectionClosed(): void;

  get admitted(): boolean {
    return this.handshake.done;
  }

  /** Once going away and every call's last frame is written, the connection ends. */
  protected endIfDone(): void {
    if (this.closed || (this.draining !== 'final' && !this.goawayReceived)) return;
    if (this.activeCalls > 0 || this.hasQueuedOutput()) return;
    this.flush();
    this.closed = true;
    this.socket.end();
  }

  protected override onStreamDrained(): void {
    this.endIfDone();
  }

  private onSocketData(chunk: Buffer): void {
    const bytes = this.handshake.preface(chunk);
    if (bytes === undefined) return;
    if (bytes instanceof ConnectionError) {
      this.fail(bytes);
      return;
    }
    const received = this.receive(bytes);
    this.startArrived();
    if (!received) return;
    if (this.handshake.overBudget(this.reader.heldBytes)) {
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
    const refused = this.handshake.refuseFirst(type, payload.length);
    if (refused === 'handshakeBytes') this.abandon(refused);
    else if (refused !== undefined) this.fail(refused);
    else super.onFrame(type, flags, id, payload);
  }

  protected override onSettings(): void {
    if (this.handshake.settled() && this.shutdownRequested) this.shutdown();
  }

  protected onGoaway(): void {
    // The client opens no more streams; those it has finish normally.
    this.goawayReceived = true;
    this.endIfDone();
  }

  protected override onPingAck(): void {
    if (this.draining === 'announced') this.finalGoaway();
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
    this.sendGoaway(MAX_STREAM_ID, ErrorCode.NO_ERROR, 'shutting down');
    this.writeFrame(pingFrame(GRACEFUL_PING, false));
    // Some clients never answer a PING after a GOAWAY; a unix socket's round trip is far shorter than this.
    setTimeout(() => this.finalGoaway(), GRACEFUL_PING_WAIT_MS).unref();
  }

  private finalGoaway(): void {
    if (this.draining === 'final' || this.closed) return;
    this.draining = 'final';
    this.sendGoaway(this.lastPeerStreamId(), ErrorCode.NO_ERROR, 'shutting down');
    this.endIfDone();
  }

  /** Closes an idle connection (idle timeout, or room for a new one) with GOAWAY NO_ERROR. */
  closeIdle(limit: LimitName): void {
    this.countLimit(limit);
    this.draining = 'final';
    this.sendGoaway(this.lastPeerStreamId(), ErrorCode.NO_ERROR, limit);
    this.endIfDone();
  }

  private abandon(limit: LimitName): void {
    if (this.closed || this.handshake.done) return;
    this.countLimit(limit);
    this.closed = true;
    this.socket.destroy();
  }

  private onSocketClosed(): void {
    this.handshake.stop();
    this.closed = true;
    this.reader.stop();
    for (const stream of [...this.streams.values()]) {
      this.forget(stream);
      stream.cancel();
    }
    this.onConnectionClosed();
  }
}
