import type * as net from 'node:net';
import { GrpcStatus } from '../errors';
import { statusFields } from './grpc-status';
import { ClientLifecycle, type LimitName } from './client-lifecycle';
import { ClientStream } from './client-stream';
import type { StreamHost } from './stream-host';
import { ConnectionError, ErrorCode, StreamError } from './http2/frames';
import { rstStreamFrame } from './http2/frame-writers';
import { RecentlyClosed, type ClosedHow } from './http2/closed-streams';
import type { HeaderBlock } from './http2/hpack-decoder';
import { headerFrames } from './http2/header-frames';
import type { Limits } from './limits';
import { countRequestData, requestHeadOf, trailersProblem } from './http2/request-head';
import { StreamBudget } from './http2/stream-budget';

const RECENTLY_CLOSED = 128;
const EMPTY = Buffer.alloc(0);

export interface ClientConnectionOptions {
  readonly limits: Limits;
  readonly maxMessageBytes: number;
  readonly onRequest: (stream: ClientStream) => void;
  readonly onLimit: (limit: LimitName) => void;
  readonly onProtocolError: (error: ConnectionError | StreamError) => void;
  readonly onObserverFault: (error: unknown) => void;
  readonly onClosed: (connection: ClientConnection) => void;
}

/**
 * A connection from a client (kubelet, crictl): the server side of HTTP/2. Requests become ClientStreams the
 * server runs through the chain; the connection's life around them is ClientLifecycle's.
 */
export class ClientConnection extends ClientLifecycle implements StreamHost<ClientStream> {
  private lastStreamId = 0;
  private heldBytes = 0;
  /** How the last streams closed, so late frames on them are told apart from frames on ids never used. */
  private readonly recentlyClosed = new RecentlyClosed(RECENTLY_CLOSED);
  private readonly budget: StreamBudget;
  /** Requests whose headers arrived in the bytes being read, not yet handed to the server. */
  private arrived: ClientStream[] | undefined;
  readonly onObserverFault: (error: unknown) => void;

  constructor(
    socket: net.Socket,
    private readonly options: ClientConnectionOptions,
  ) {
    super(socket, options.limits);
    this.budget = new StreamBudget(options.limits.maxResetStreams);
    this.onObserverFault = options.onObserverFault;
  }

  get maxHeldBytes(): number {
    return this.options.limits.maxHeldRequestBytes;
  }

  /**
   * Bytes this connection holds in the proxy: requests held for interceptors, responses waiting for the client
   * (beyond its windows, or written and not yet read), a header block or frame still arriving.
   */
  get bytesHeld(): number {
    return this.heldBytes + this.queuedDataBytes + this.backlogBytes + this.blockBytes + this.reader.heldBytes;
  }

  /** Accounts request bytes held for an interceptor; false once the connection's limit is exceeded. */
  holdBytes(bytes: number): boolean {
    this.heldBytes += bytes;
    if (this.heldBytes <= this.options.limits.maxHeldRequestBytes) return true;
    this.options.onLimit('heldRequestBytes');
    return false;
  }

  callEnded(_stream: ClientStream, heldBytes: number): void {
    this.heldBytes -= heldBytes;
    this.activeCalls--;
    if (this.activeCalls === 0) this.idleSince = Date.now();
    this.endIfDone();
  }

  protected override forget(stream: ClientStream): void {
    if (!stream.closed) this.recentlyClosed.add(stream.id, closedHow(stream));
    super.forget(stream);
  }

  /** Response bytes waiting for a client that does not take them are bounded: past the limit it is let go. */
  override sendData(stream: ClientStream, data: Buffer, end: boolean, onSent?: (bytes: number) => void): boolean {
    const queued = super.sendData(stream, data, end, onSent);
    const max = this.options.limits.maxHeldResponseBytes;
    if (this.queuedDataBytes + this.backlogBytes > max) {
      this.fail(
        new ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, `more than ${max} response bytes waiting for the client`, 'heldResponseBytes'),
      );
      // It is not reading: what waits for it is dropped now rather than after the close timeout.
      this.socket.destroy();
    }
    return queued;
  }

  protected onHeaders(id: number, endStream: boolean, block: HeaderBlock): void {
    const existing = this.streams.get(id);
    if (existing !== undefined) {
      this.onTrailers(existing, endStream, block);
      return;
    }
    if (id % 2 === 0 || id <= this.lastStreamId) {
      // A stream that closed gets the RFC's answer (late frames after our reset are dropped); reopening an id
      // never used, or one closed too long ago to tell, is an error.
      if (id % 2 !== 0 && this.recentlyClosed.get(id) !== undefined) {
        this.onClosedStream('HEADERS', id);
        return;
      }
      throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `HEADERS opening stream ${id} out of order`);
    }
    this.lastStreamId = id;
    // After the final GOAWAY, streams past its last stream id are ignored (RFC 9113 §6.8).
    if (this.draining === 'final' || this.closed) return;
    this.budget.open();
    if (block.overLimit) {
      this.refuseHeaderList(id, endStream, block.listBytes);
      return;
    }
    if (this.activeCalls >= this.options.limits.maxConcurrentStreams) {
      // Refused streams are retried by gRPC clients; calls of reset streams still count until they end.
      this.options.onLimit('concurrentStreams');
      this.writeFrame(rstStreamFrame(id, ErrorCode.REFUSED_STREAM));
      this.recentlyClosed.add(id, 'localReset');
      this.streamWasted();
      return;
    }
    // Never forwarded when malformed (RFC 9113 §8.1.1): the runtime sees exactly the list the chain saw.
    const head = requestHeadOf(block);
    if (typeof head === 'string') throw new StreamError(id, ErrorCode.PROTOCOL_ERROR, `malformed request: ${head}`);
    if (endStream) countRequestData(id, head, 0, 0, true);
    const stream = new ClientStream(this, id, this.newStreamWindows(), block.fields, head, this.options.maxMessageBytes);
    stream.remoteEnded = endStream;
    this.streams.set(id, stream);
    this.activeCalls++;
    // Started once the rest of what was read with it has been taken in: the request's DATA, usually, so that a
    // unary call goes up whole at once rather than being held for it.
    (this.arrived ??= []).push(stream);
  }

  /** Hands the requests whose headers came in the bytes just read to the server. */
  protected startArrived(): void {
    const arrived = this.arrived;
    if (arrived === undefined) return;
    this.arrived = undefined;
    for (const stream of arrived) this.options.onRequest(stream);
  }

  /** A second header block on a request: its trailers, which gRPC has no use for; they only end the request. */
  private onTrailers(stream: ClientStream, endStream: boolean, block: HeaderBlock): void {
    const id = stream.id;
    if (stream.remoteEnded) throw new StreamError(id, ErrorCode.STREAM_CLOSED, `HEADERS after the end of stream ${id}`);
    if (!endStream) throw new StreamError(id, ErrorCode.PROTOCOL_ERROR, 'a second header block without END_STREAM');
    if (block.overLimit) throw new StreamError(id, ErrorCode.ENHANCE_YOUR_CALM, `trailers of ${block.listBytes} bytes`);
    const problem = trailersProblem(block.fields);
    if (problem !== undefined) throw new StreamError(id, ErrorCode.PROTOCOL_ERROR, `malformed request: ${problem}`);
    countRequestData(id, stream.head, stream.receivedBytes, 0, true);
    stream.remoteEnded = true;
    stream.onClientData(EMPTY, true);
    this.closeIfDone(stream);
  }

  /** A header list over SETTINGS_MAX_HEADER_LIST_SIZE: a clear gRPC error rather than a reset. */
  private refuseHeaderList(id: number, endStream: boolean, listBytes: number): void {
    this.options.onLimit('headerListBytes');
    this.streamWasted();
    const message = `cri-proxy: request headers of ${listBytes} bytes exceed the limit of ${this.local.maxHeaderListBytes} (limits.maxHeaderListBytes)`;
    for (const frame of headerFrames(
      this.encoder,
      id,
      statusFields(GrpcStatus.RESOURCE_EXHAUSTED, message, true, 'LIMIT_EXCEEDED'),
      true,
      this.peer.maxFrameSize,
    ))
      this.writeFrame(frame);
    if (!endStream) this.writeFrame(rstStreamFrame(id, ErrorCode.NO_ERROR));
    this.recentlyClosed.add(id, endStream ? 'ended' : 'localReset');
  }

  protected onData(stream: ClientStream, data: Buffer, endStream: boolean): void {
    stream.receivedBytes = countRequestData(stream.id, stream.head, stream.receivedBytes, data.length, endStream);
    stream.onClientData(data, endStream);
  }

  protected onStreamReset(stream: ClientStream): void {
    stream.cancel();
    this.streamWasted();
  }

  protected onUnopenedStreamReset(id: number): void {
    // A request refused as malformed wastes a stream; an error on one already closed does not count again.
    if (this.recentlyClosed.get(id) === undefined) this.streamWasted();
    this.recentlyClosed.add(id, 'localReset');
    if (id % 2 === 1 && id > this.lastStreamId) this.lastStreamId = id;
  }

  /** A stream that did no work: too many, and the client is let go (see StreamBudget). */
  private streamWasted(): void {
    const error = this.budget.waste();
    if (error !== undefined) this.fail(error);
  }

  protected closedHow(id: number): ClosedHow {
    if (id > this.lastStreamId || id % 2 === 0) return 'idle';
    return this.recentlyClosed.get(id) ?? 'forgotten';
  }

  protected lastPeerStreamId(): number {
    return this.lastStreamId;
  }

  protected countLimit(limit: LimitName): void {
    this.options.onLimit(limit);
  }

  protected onConnectionClosed(): void {
    this.options.onClosed(this);
  }

  protected onProtocolError(error: ConnectionError | StreamError): void {
    this.options.onProtocolError(error);
  }

  protected override onLimitExceeded(error: ConnectionError): void {
    if (error.limit !== undefined) this.options.onLimit(error.limit);
  }
}

/** How a stream that is being forgotten closed. */
function closedHow(stream: ClientStream): ClosedHow {
  if (stream.resetBy === 'peer') return 'peerReset';
  return stream.resetBy === 'local' ? 'localReset' : 'ended';
}
