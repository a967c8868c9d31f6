import { GrpcStatus, ProxyError } from '../errors';
import { FrameScanner, frameMessage } from './grpc-frames';
import { RESPONSE_FIELDS, readStatusFields, statusFields } from './grpc-status';
import { ErrorCode } from './http2/frames';
import { Http2Stream } from './http2/connection';
import type { HeaderBlock } from './http2/hpack-decoder';
import { observeWith, tooLarge } from './relay-messages';
import type { RuntimeConnection, StreamFailure, UpstreamHandler, UpstreamStream } from './runtime-connection';
import type { CallTransport, ForwardRequest } from './transport';
import type { CallOutcome, ResponseStream } from './types';
import type { ClientConnection } from './client-connection';

/** A unary response up to this size is held and sent with its status in one write; larger ones stream. */
const HOLD_LIMIT = 64 * 1024;
/** A response the proxy streams itself pauses its producer above this many unsent bytes. */
const STREAM_HIGH_WATER = 256 * 1024;
const EMPTY = Buffer.alloc(0);

const enum RequestMode {
  /** Request DATA waits, uncredited, for the call to be forwarded or read. */
  Queue,
  /** An interceptor reads the request: the proxy holds it and credits the client itself. */
  Hold,
  /** Forwarded: DATA goes straight to the runtime, credited to the client once written there. */
  Pipe,
}

function outcomeOf(error: ProxyError): CallOutcome {
  return { code: error.grpcStatus, message: error.message, fromProxy: true, errorCode: error.code };
}

const CANCELLED_OUTCOME: CallOutcome = Object.freeze({
  code: GrpcStatus.CANCELLED,
  message: 'the client cancelled the call',
  fromProxy: true,
  errorCode: 'CANCELLED',
});

/**
 * One call on a client connection, and the relay of it to a runtime stream: the transport port a call context
 * is built on. Request bytes go up and response bytes come down as views of what was received, each paced by
 * the other side's flow control.
 */
export class ClientStream extends Http2Stream implements CallTransport, UpstreamHandler {
  cancelled = false;
  private cancelListener: (() => void) | undefined;
  private mode = RequestMode.Queue;
  private queued: Buffer[] | undefined;
  private body: Body | undefined;
  private requestError: ProxyError | undefined;
  private readonly requestScanner: FrameScanner;
  private upConn: RuntimeConnection | undefined;
  private up: UpstreamStream | undefined;
  private forwarded: ForwardRequest | undefined;
  private settle: ((outcome: CallOutcome) => void) | undefined;
  /** The runtime's side of a forwarded call is over (or was never started). */
  private settled = true;
  private responseStarted = false;
  private headersSent = false;
  private holding = false;
  private heldHeaders: readonly string[] | undefined;
  private heldData: Buffer[] | undefined;
  private heldBytes = 0;
  private kept: Buffer[] | undefined;
  private trailers: readonly string[] | undefined;
  private trailersOnly = false;
  private responseScanner: FrameScanner | undefined;
  private reply: readonly Buffer[] | undefined;
  private finished = false;
  private drainWaiters: (() => void)[] | undefined;
  private readonly creditClient = (bytes: number): void => this.conn.consumed(this, bytes);
  private readonly creditUpstream = (bytes: number): void => {
    if (this.up !== undefined) this.upConn?.consumed(this.up, bytes);
  };

  constructor(
    readonly conn: ClientConnection,
    id: number,
    windows: readonly [number, number],
    readonly fields: readonly string[],
    maxMessageBytes: number,
  ) {
    super(id, windows[0], windows[1]);
    this.requestScanner = new FrameScanner({ maxMessageBytes });
  }

  onCancel(listener: () => void): void {
    this.cancelListener = listener;
  }

  // ---- request ----
  onClientData(data: Buffer, end: boolean): void {
    if (this.requestError !== undefined || this.cancelled) {
      this.conn.consumed(this, data.length);
      return;
    }
    try {
      if (data.length > 0) this.requestScanner.push(data);
    } catch (err) {
      this.conn.consumed(this, data.length);
      this.failRequest(tooLarge(err, 'request'));
      return;
    }
    const body = this.body;
    if (this.mode === RequestMode.Pipe) {
      const sent = this.up !== undefined && this.upConn?.sendData(this.up, data, end, this.creditClient) === true;
      if (!sent) this.conn.consumed(this, data.length);
    } else if (body !== undefined) {
      this.hold(body, data);
      if (end) body.settle?.();
    } else if (data.length > 0) {
      (this.queued ??= []).push(data);
    }
  }

  readRequest(): Promise<Buffer> {
    if (this.body !== undefined) return this.body.done;
    if (this.requestError !== undefined) return Promise.reject(this.requestError);
    if (this.cancelled) return Promise.reject(new ProxyError('CANCELLED', CANCELLED_OUTCOME.message));
    if (this.mode === RequestMode.Pipe) return Promise.reject(new ProxyError('CHAIN_MISUSE', 'the request was read after it was forwarded'));
    this.mode = RequestMode.Hold;
    const body: Body = { parts: [], bytes: 0, done: Promise.resolve(EMPTY) };
    body.done = new Promise<Buffer>((resolve, reject) => {
      body.settle = (error) => {
        body.settle = undefined;
        if (error) reject(error);
        else resolve(body.parts.length === 1 ? (body.parts[0] as Buffer) : Buffer.concat(body.parts, body.bytes));
      };
    });
    this.body = body;
    const queued = this.queued;
    this.queued = undefined;
    if (queued) for (const part of queued) this.hold(body, part);
    if (this.remoteEnded) body.settle?.();
    return body.done;
  }

  private hold(body: Body, data: Buffer): void {
    this.conn.consumed(this, data.length);
    if (data.length === 0) return;
    body.parts.push(data);
    body.bytes += data.length;
    if (!this.conn.holdBytes(data.length)) {
      this.failRequest(new ProxyError('LIMIT_EXCEEDED', `cri-proxy: requests held for interceptors on this connection exceed ${this.conn.maxHeldBytes} bytes (limits.maxHeldRequestBytes)`));
    }
  }

  private failRequest(error: ProxyError): void {
    this.requestError = error;
    this.dropQueued();
    this.body?.settle?.(error);
    if (!this.settled) this.failUpstream(error);
  }

  private dropQueued(): void {
    const queued = this.queued;
    this.queued = undefined;
    if (queued) for (const part of queued) this.conn.consumed(this, part.length);
  }

  // ---- forwarding ----
  async forward(request: ForwardRequest): Promise<CallOutcome> {
    // A request read by the chain goes up whole, once it is all here.
    const body = this.mode === RequestMode.Hold ? await this.body?.done.catch(() => undefined) : undefined;
    if (this.cancelled) return CANCELLED_OUTCOME;
    if (this.requestError !== undefined) return outcomeOf(this.requestError);
    let conn: RuntimeConnection;
    try {
      conn = request.upstream.connection();
    } catch (err) {
      return outcomeOf(err instanceof ProxyError ? err : request.upstream.unavailable(err));
    }
    this.forwarded = request;
    this.upConn = conn;
    this.holding = request.holdResponse;
    if (request.keepResponse) this.kept = [];
    this.responseScanner = new FrameScanner({
      maxMessageBytes: request.maxMessageBytes,
      onMessage: request.observers ? observeWith(request.observers, request.responseType, this.conn.onObserverFault) : undefined,
    });
    this.settled = false;
    const outcome = new Promise<CallOutcome>((resolve) => (this.settle = resolve));
    const up = (this.up = conn.open(request.headers, this));
    if (body !== undefined) {
      // Held bytes were credited to the client already.
      conn.sendData(up, body, true);
    } else {
      this.mode = RequestMode.Pipe;
      const queued = this.queued ?? [];
      this.queued = undefined;
      for (const [i, part] of queued.entries()) conn.sendData(up, part, this.remoteEnded && i === queued.length - 1, this.creditClient);
      if (queued.length === 0 && this.remoteEnded) conn.sendData(up, EMPTY, true);
    }
    return outcome;
  }

  private settleWith(outcome: CallOutcome): void {
    if (this.settled) return;
    this.settled = true;
    this.settle?.(outcome);
  }

  private failUpstream(error: ProxyError): void {
    if (this.up !== undefined && !this.up.closed) this.upConn?.cancel(this.up);
    this.settleWith(outcomeOf(error));
  }

  private protocolError(problem: string): void {
    const name = this.forwarded?.upstream.name ?? '';
    this.failUpstream(new ProxyError('UPSTREAM_PROTOCOL', `cri-proxy: runtime "${name}" ${problem}`));
  }

  onResponseHeaders(block: HeaderBlock, end: boolean): void {
    if (this.settled) return;
    if (block.overLimit) {
      this.protocolError(`sent a header list of ${block.listBytes} bytes, over the limit`);
    } else if (this.responseStarted) {
      if (!end) this.protocolError('sent a second header block before the end of the stream');
      else this.settleWithTrailers(block.fields);
    } else {
      this.responseStarted = true;
      this.trailersOnly = end;
      if (end) this.settleWithTrailers(block.fields);
      else if (this.holding) this.heldHeaders = block.fields;
      else this.sendResponseHeaders(block.fields);
    }
  }

  private settleWithTrailers(fields: readonly string[]): void {
    this.trailers = fields;
    this.settleWith({ ...readStatusFields(fields), fromProxy: false });
  }

  onResponseData(data: Buffer, end: boolean): void {
    const length = data.length;
    if (this.settled || !this.responseStarted) {
      this.creditUpstream(length);
      if (!this.settled) this.protocolError('sent DATA before response headers');
      return;
    }
    try {
      if (length > 0) this.responseScanner?.push(data);
    } catch (err) {
      this.creditUpstream(length);
      this.failUpstream(tooLarge(err, 'response'));
      return;
    }
    if (length > 0) this.kept?.push(data);
    if (this.holding) {
      this.creditUpstream(length);
      if (length > 0) (this.heldData ??= []).push(data);
      this.heldBytes += length;
      if (this.heldBytes > HOLD_LIMIT) this.flushHeld();
    } else if (!this.conn.sendData(this, data, false, this.creditUpstream)) {
      this.creditUpstream(length);
    }
    if (end) this.protocolError('ended the call without a status');
  }

  onStreamFailed(failure: StreamFailure): void {
    const upstream = this.forwarded?.upstream;
    if (this.settled || upstream === undefined) return;
    const code = failure.code === undefined ? 'none' : String(failure.code);
    if (!this.responseStarted) {
      this.settleWith(outcomeOf(upstream.unavailable(failure.error ?? new Error(`stream reset (code ${code})`))));
      return;
    }
    const why = failure.error ? failure.error.message : `reset code ${code}`;
    this.settleWith(outcomeOf(new ProxyError('UPSTREAM_PROTOCOL', `cri-proxy: runtime "${upstream.name}" ended the call without a status (${why})`)));
  }

  responseBody(): Buffer | undefined {
    const kept = this.kept;
    if (kept === undefined || kept.length === 1) return kept?.[0];
    const whole = Buffer.concat(kept);
    this.kept = [whole];
    return whole;
  }

  private sendResponseHeaders(fields: readonly string[]): void {
    this.headersSent = true;
    this.conn.sendHeaders(this, fields, false);
  }

  private flushHeld(): void {
    this.holding = false;
    if (this.heldHeaders !== undefined) this.sendResponseHeaders(this.heldHeaders);
    this.heldHeaders = undefined;
    const held = this.heldData;
    this.heldData = undefined;
    if (held) for (const part of held) this.conn.sendData(this, part, false);
  }

  // ---- the proxy's own answers ----
  respond(messages: readonly Buffer[]): void {
    this.reply = messages;
  }

  openResponse(onEnd: (outcome: CallOutcome) => void): ResponseStream {
    this.sendResponseHeaders(RESPONSE_FIELDS);
    return new OwnResponse(this, onEnd);
  }

  /** Sends one message of a response the proxy streams itself; `onSent` reports it written. */
  sendOwnMessage(message: Buffer, onSent: (bytes: number) => void): number {
    const framed = frameMessage(message);
    this.conn.sendData(this, framed, false, onSent);
    return framed.length;
  }

  endOwnResponse(code: number, message: string): void {
    this.conn.sendHeaders(this, statusFields(code, message, false), true);
  }

  waitForDrain(): Promise<void> {
    return new Promise<void>((resolve) => (this.drainWaiters ??= []).push(resolve));
  }

  wakeDrainWaiters(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = undefined;
    if (waiters) for (const wake of waiters) wake();
  }

  // ---- the end ----
  finish(outcome: CallOutcome): void {
    if (this.finished) return;
    this.finished = true;
    if (outcome.fromProxy && this.up !== undefined && !this.up.closed) this.upConn?.cancel(this.up);
    if (!this.cancelled && !this.localEnded) this.sendOutcome(outcome);
    // Last: a draining connection may close once its last call has ended.
    this.conn.callEnded(this, this.body?.bytes ?? 0);
  }

  private sendOutcome(outcome: CallOutcome): void {
    const conn = this.conn;
    if (outcome.fromProxy) {
      if (this.reply !== undefined && outcome.code === GrpcStatus.OK) {
        this.sendResponseHeaders(RESPONSE_FIELDS);
        for (const message of this.reply) conn.sendData(this, frameMessage(message), false);
      }
      conn.sendHeaders(this, statusFields(outcome.code, outcome.message, !this.headersSent), true);
    } else if (this.trailersOnly && !this.headersSent) {
      conn.sendHeaders(this, this.trailers ?? statusFields(outcome.code, outcome.message, true), true);
    } else {
      this.flushHeld();
      conn.sendHeaders(this, this.trailers ?? statusFields(outcome.code, outcome.message, false), true);
    }
    // The response is complete: a client still sending is told to stop (RFC 9113 §8.1).
    if (!this.remoteEnded && this.out === undefined) conn.resetStream(this, ErrorCode.NO_ERROR);
  }

  /** The client reset the stream or its connection went away. */
  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.dropQueued();
    this.body?.settle?.(new ProxyError('CANCELLED', CANCELLED_OUTCOME.message));
    if (this.up !== undefined && !this.up.closed) this.upConn?.cancel(this.up);
    this.settleWith(CANCELLED_OUTCOME);
    this.wakeDrainWaiters();
    this.cancelListener?.();
  }
}

interface Body {
  readonly parts: Buffer[];
  bytes: number;
  done: Promise<Buffer>;
  settle?: ((error?: ProxyError) => void) | undefined;
}

/** A response the proxy streams itself, paced by what the client takes. */
class OwnResponse implements ResponseStream {
  private unsent = 0;
  private ended = false;
  private readonly sent = (bytes: number): void => {
    this.unsent -= bytes;
    if (this.unsent < STREAM_HIGH_WATER / 2) this.stream.wakeDrainWaiters();
  };

  constructor(
    private readonly stream: ClientStream,
    private readonly onEnd: (outcome: CallOutcome) => void,
  ) {}

  get closed(): boolean {
    return this.ended || this.stream.cancelled || this.stream.localEnded;
  }

  write(message: Buffer): boolean {
    if (this.closed) return false;
    this.unsent += this.stream.sendOwnMessage(message, this.sent);
    return this.unsent < STREAM_HIGH_WATER;
  }

  drained(): Promise<void> {
    if (this.closed || this.unsent < STREAM_HIGH_WATER / 2) return Promise.resolve();
    return this.stream.waitForDrain();
  }

  end(code: number = GrpcStatus.OK, message = ''): void {
    if (this.closed) return;
    this.ended = true;
    this.stream.endOwnResponse(code, message);
    this.onEnd({ code, message, fromProxy: true });
  }
}
