import { ProxyError } from '../errors';
import { CANCELLED_OUTCOME, outcomeOfError } from './call-outcome';
import { FrameScanner, frameMessage } from './grpc-frames';
import { RESPONSE_FIELDS, asTrailersOnly, statusFields, withoutPseudoHeaders } from './grpc-status';
import { HeldRequest } from './held-request';
import type { StreamHost } from './stream-host';
import { ErrorCode } from './http2/frames';
import { Http2Stream } from './http2/stream';
import { appendPiece } from './http2/pieces';
import type { RequestHead } from './http2/request-head';
import { OwnResponse } from './own-response';
import { tooLarge } from './relay-messages';
import { ResponseRelay, type ResponseSink } from './response-relay';
import type { CallTransport, ForwardRequest } from './transport';
import type { CallOutcome, OwnAnswer, ResponseStream } from '../chain/types';

const EMPTY = Buffer.alloc(0);

const enum RequestMode {
  /** Request DATA waits, uncredited, for the call to be forwarded or read. */
  Queue,
  /** An interceptor reads the request: the proxy holds it and credits the client itself. */
  Hold,
  /** Forwarded: DATA goes straight to the runtime, credited to the client once written there. */
  Pipe,
}

/**
 * One call on a client connection, and the relay of it to a runtime stream: the transport port a call context
 * is built on. Request bytes go up and response bytes come down as views of what was received, each paced by
 * the other side's flow control.
 */
export class ClientStream extends Http2Stream implements CallTransport, ResponseSink {
  cancelled = false;
  private cancelListener: (() => void) | undefined;
  private mode = RequestMode.Queue;
  private queued: Buffer[] | undefined;
  private body: HeldRequest | undefined;
  private requestError: ProxyError | undefined;
  private readonly requestScanner: FrameScanner;
  private relay: ResponseRelay | undefined;
  private headersSent = false;
  private reply: OwnAnswer | undefined;
  private own: OwnResponse | undefined;
  private replacement: Buffer | undefined;
  private finished = false;
  /** Only the request's first message was asked for (a method outside the table): the rest is not waited for. */
  private peeked = false;
  private readonly creditClient = (bytes: number): void => this.conn.consumed(this, bytes);
  /** Request DATA bytes received, checked against the declared `content-length`. */
  receivedBytes = 0;

  constructor(
    readonly conn: StreamHost<ClientStream>,
    id: number,
    windows: readonly [number, number],
    readonly fields: readonly string[],
    /** What the header list says, checked well-formed: the one `:path` and the declared length. */
    readonly head: RequestHead,
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
      if (this.relay?.sendRequest(data, end, this.creditClient) !== true) this.conn.consumed(this, data.length);
    } else if (body !== undefined) {
      this.hold(body, data);
      if (end) body.settle?.();
    } else if (data.length > 0) {
      appendPiece((this.queued ??= []), data);
    }
  }

  readRequest(): Promise<Buffer> {
    if (this.body !== undefined) {
      // Asked whole after its first message: it goes up whole too.
      this.peeked = false;
      return this.body.done;
    }
    const refusal = this.readRefusal();
    return refusal === undefined ? this.holdRequest().done : Promise.reject(refusal);
  }

  readFirstMessage(): Promise<Buffer | undefined> {
    let body = this.body;
    if (body === undefined) {
      if (this.readRefusal() !== undefined) return Promise.resolve(undefined);
      this.peeked = true;
      body = this.holdRequest();
      // Nobody may wait for the whole of it: its failure is the call's, reported when it is forwarded.
      body.done.catch(() => undefined);
    }
    return body.firstMessage();
  }

  private readRefusal(): ProxyError | undefined {
    if (this.requestError !== undefined) return this.requestError;
    if (this.cancelled) return new ProxyError('CANCELLED', CANCELLED_OUTCOME.message);
    if (this.mode === RequestMode.Pipe) return new ProxyError('CHAIN_MISUSE', 'the request was read after it was forwarded');
    return undefined;
  }

  /** From now on the request is held (and the client credited) as it comes. */
  private holdRequest(): HeldRequest {
    this.mode = RequestMode.Hold;
    const body = (this.body = new HeldRequest());
    const queued = this.queued;
    this.queued = undefined;
    if (queued) for (const part of queued) this.hold(body, part);
    if (this.remoteEnded) body.settle?.();
    return body;
  }

  private hold(body: HeldRequest, data: Buffer): void {
    this.conn.consumed(this, data.length);
    if (data.length === 0) return;
    body.add(data);
    if (!this.conn.holdBytes(data.length)) {
      this.failRequest(
        new ProxyError(
          'LIMIT_EXCEEDED',
          `cri-proxy: requests held on this connection (for interceptors, or until complete) exceed ${this.conn.maxHeldBytes} bytes (limits.maxHeldRequestBytes)`,
        ),
      );
    }
  }

  private failRequest(error: ProxyError): void {
    this.requestError = error;
    this.dropQueued();
    this.body?.settle?.(error);
    this.relay?.fail(error);
  }

  private dropQueued(): void {
    const queued = this.queued;
    this.queued = undefined;
    if (queued) for (const part of queued) this.conn.consumed(this, part.length);
  }

  // ---- forwarding ----
  forward(request: ForwardRequest): Promise<CallOutcome> {
    // A request still arriving that must go up whole waits for its end (held, the client credited as it comes).
    const whole = request.wholeRequest || this.head.contentLength >= 0;
    if (whole && this.mode === RequestMode.Queue && !this.remoteEnded && !this.cancelled && this.requestError === undefined) {
      this.holdRequest();
    }
    // A request read by the chain, or held above, goes up whole once it is all here; one only peeked at (a method
    // outside the table, its length not declared) goes on as it comes.
    const peeked = this.mode === RequestMode.Hold && this.peeked && !whole ? (this.body?.parts ?? []) : undefined;
    const held = this.mode === RequestMode.Hold && peeked === undefined ? this.body : undefined;
    if (held !== undefined) {
      return held.done.then(
        (body) => this.relayTo(request, body, undefined),
        () => this.relayTo(request, undefined, undefined),
      );
    }
    return this.relayTo(request, undefined, peeked);
  }

  private relayTo(request: ForwardRequest, body: Buffer | undefined, peeked: Buffer[] | undefined): Promise<CallOutcome> {
    if (this.cancelled) return Promise.resolve(CANCELLED_OUTCOME);
    if (this.requestError !== undefined) return Promise.resolve(outcomeOfError(this.requestError));
    const conn = request.upstream.connection();
    if (conn instanceof ProxyError) return Promise.resolve(outcomeOfError(conn));
    const relay = (this.relay = new ResponseRelay(this, request, conn, this.conn.onObserverFault));
    if (body !== undefined) {
      // Held bytes were credited to the client already.
      relay.sendRequest(this.replacement ?? body, true, undefined);
    } else {
      this.mode = RequestMode.Pipe;
      const queued = peeked ?? this.queued;
      this.queued = undefined;
      // Bytes held for a peek were credited to the client already.
      const credit = peeked === undefined ? this.creditClient : undefined;
      if (queued === undefined || queued.length === 0) {
        if (this.remoteEnded) relay.sendRequest(EMPTY, true, undefined);
      } else {
        const last = queued.length - 1;
        for (let i = 0; i <= last; i++) relay.sendRequest(queued[i] as Buffer, this.remoteEnded && i === last, credit);
      }
    }
    return relay.outcome;
  }

  sendResponseHeaders(fields: readonly string[]): void {
    this.headersSent = true;
    this.conn.sendHeaders(this, fields, false);
  }

  /** False when the stream has ended on the client's side (the caller credits the bytes then). */
  sendResponseData(data: Buffer, onSent: ((bytes: number) => void) | undefined): boolean {
    return this.conn.sendData(this, data, false, onSent);
  }

  sendResponseEnd(fields: readonly string[]): void {
    this.conn.sendHeaders(this, fields, true);
  }

  responseBody(): Buffer | undefined {
    return this.relay?.responseBody();
  }

  // ---- the proxy's own answers ----
  respond(answer: OwnAnswer): void {
    this.reply = answer;
  }

  replaceRequest(body: Buffer): void {
    if (this.body === undefined) throw new ProxyError('CHAIN_MISUSE', 'the request was replaced before it was read');
    this.replacement = body;
  }

  openResponse(onEnd: (outcome: CallOutcome) => void): ResponseStream {
    this.sendResponseHeaders(RESPONSE_FIELDS);
    return (this.own = new OwnResponse(this, onEnd));
  }

  interrupt(outcome: CallOutcome): void {
    this.relay?.cancel(outcome);
    this.own?.end(outcome.code, outcome.message);
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

  // ---- the end ----
  finish(outcome: CallOutcome): void {
    if (this.finished) return;
    this.finished = true;
    if (outcome.fromProxy) this.relay?.cancel();
    if (!this.cancelled && !this.localEnded) this.sendOutcome(outcome);
    // Last: a draining connection may close once its last call has ended.
    this.conn.callEnded(this, this.body?.bytes ?? 0);
  }

  private sendOutcome(outcome: CallOutcome): void {
    const relay = this.relay;
    // The runtime's status: its relay ends the response as the runtime did.
    if (!outcome.fromProxy && relay !== undefined) relay.finishResponse(outcome);
    else this.sendOwnOutcome(outcome);
    // The response is complete: a client still sending is told to stop (RFC 9113 §8.1).
    if (!this.remoteEnded && this.out === undefined) this.conn.resetStream(this, ErrorCode.NO_ERROR);
  }

  /** The proxy's own status, after the messages of its own answer if it gave one. */
  private sendOwnOutcome(outcome: CallOutcome): void {
    const conn = this.conn;
    // An error after the answer was chosen (a later interceptor failing) replaces it.
    const reply = outcome.errorCode === undefined ? this.reply : undefined;
    if (reply?.messages !== undefined && reply.messages.length > 0) {
      this.sendResponseHeaders(RESPONSE_FIELDS);
      for (const message of reply.messages) conn.sendData(this, frameMessage(message), false);
    }
    const trailers = reply?.trailers;
    if (trailers === undefined)
      conn.sendHeaders(this, statusFields(outcome.code, outcome.message, !this.headersSent, outcome.errorCode), true);
    else conn.sendHeaders(this, this.headersSent ? withoutPseudoHeaders(trailers) : asTrailersOnly(trailers), true);
  }

  /** The client reset the stream or its connection went away. */
  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.dropQueued();
    this.body?.settle?.(new ProxyError('CANCELLED', CANCELLED_OUTCOME.message));
    this.relay?.cancel(CANCELLED_OUTCOME);
    this.own?.abandon();
    this.cancelListener?.();
  }
}
