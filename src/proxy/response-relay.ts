import { ProxyError } from '../errors';
import { outcomeOfError } from './call-outcome';
import { FrameScanner } from './grpc-frames';
import { readStatusFields, statusFields } from './grpc-status';
import type { HeaderBlock } from './http2/hpack-decoder';
import { observeWith, tooLarge } from './relay-messages';
import type { RuntimeConnection, StreamFailure, UpstreamHandler, UpstreamStream } from './runtime-connection';
import type { ForwardRequest } from './transport';
import type { CallOutcome } from '../chain/types';

/** A unary response up to this size is held and sent with its status in one write; larger ones stream. */
const HOLD_LIMIT = 64 * 1024;

/** Where a relayed response goes: the client's stream. */
export interface ResponseSink {
  sendResponseHeaders(fields: readonly string[]): void;
  /** False when the client's side has ended (the relay then credits the runtime itself). */
  sendResponseData(data: Buffer, onSent: ((bytes: number) => void) | undefined): boolean;
  /** Ends the response with this header block (trailers, or a trailers-only response) as it is. */
  sendResponseEnd(fields: readonly string[]): void;
}

/**
 * One forwarded call's stream to the runtime: request bytes up, and the response relayed down to the client as
 * it arrives — held (up to a bound) for unary calls so headers, message and status leave in one write, kept
 * whole when the chain will read it, checked against the message size limit, shown to observers.
 */
export class ResponseRelay implements UpstreamHandler {
  readonly outcome: Promise<CallOutcome>;
  private readonly up: UpstreamStream;
  private settle: ((outcome: CallOutcome) => void) | undefined;
  private settled = false;
  private started = false;
  private holding: boolean;
  private heldHeaders: readonly string[] | undefined;
  private heldData: Buffer[] | undefined;
  private heldBytes = 0;
  private headersSent = false;
  private kept: Buffer[] | undefined;
  private readonly scanner: FrameScanner;
  /** The runtime's trailers (or its trailers-only response), as received. */
  private trailers: readonly string[] | undefined;
  private readonly creditRuntime = (bytes: number): void => this.conn.consumed(this.up, bytes);

  constructor(
    private readonly client: ResponseSink,
    private readonly request: ForwardRequest,
    private readonly conn: RuntimeConnection,
    onObserverFault: (error: unknown) => void,
  ) {
    this.holding = request.holdResponse;
    if (request.keepResponse) this.kept = [];
    this.scanner = new FrameScanner({
      maxMessageBytes: request.maxMessageBytes,
      onMessage: request.observers ? observeWith(request.observers, request.responseType, onObserverFault) : undefined,
    });
    this.outcome = new Promise<CallOutcome>((resolve) => (this.settle = resolve));
    this.up = conn.open(request.headers, this);
  }

  /** Request bytes for the runtime; false if its stream is gone (the caller credits the client then). */
  sendRequest(data: Buffer, end: boolean, onSent: ((bytes: number) => void) | undefined): boolean {
    return this.conn.sendData(this.up, data, end, onSent);
  }

  /** Ends the runtime's stream early (RST_STREAM CANCEL); the call ends with `outcome` if not over yet. */
  cancel(outcome?: CallOutcome): void {
    if (!this.up.closed) this.conn.cancel(this.up);
    if (outcome !== undefined) this.settleWith(outcome);
  }

  fail(error: ProxyError): void {
    this.cancel(outcomeOfError(error));
  }

  responseBody(): Buffer | undefined {
    const kept = this.kept;
    if (kept === undefined || kept.length === 1) return kept?.[0];
    const whole = Buffer.concat(kept);
    this.kept = [whole];
    return whole;
  }

  /**
   * Ends the client's response as the runtime ended it, once its status came (an outcome not from the proxy):
   * what is held, then its trailers as received (a trailers-only answer holds nothing and goes out as it came).
   */
  finishResponse(outcome: CallOutcome): void {
    this.flushHeld();
    this.client.sendResponseEnd(this.trailers ?? statusFields(outcome.code, outcome.message, !this.headersSent));
  }

  /** Sends what is held back (response headers and data of a unary call) to the client. */
  private flushHeld(): void {
    this.holding = false;
    if (this.heldHeaders !== undefined) this.sendHeaders(this.heldHeaders);
    this.heldHeaders = undefined;
    const held = this.heldData;
    this.heldData = undefined;
    if (held) for (const part of held) this.client.sendResponseData(part, undefined);
  }

  onResponseHeaders(block: HeaderBlock, end: boolean): void {
    if (this.settled) return;
    if (block.overLimit) {
      this.protocolError(`sent a header list of ${block.listBytes} bytes, over the limit`);
    } else if (this.started) {
      if (!end) this.protocolError('sent a second header block before the end of the stream');
      else this.settleWithTrailers(block.fields);
    } else {
      this.started = true;
      if (end) this.settleWithTrailers(block.fields);
      else if (this.holding) this.heldHeaders = block.fields;
      else this.sendHeaders(block.fields);
    }
  }

  onResponseData(data: Buffer, end: boolean): void {
    const length = data.length;
    if (this.settled || !this.started) {
      this.creditRuntime(length);
      if (!this.settled) this.protocolError('sent DATA before response headers');
      return;
    }
    try {
      if (length > 0) this.scanner.push(data);
    } catch (err) {
      this.creditRuntime(length);
      this.fail(tooLarge(err, 'response'));
      return;
    }
    if (length > 0) this.kept?.push(data);
    if (this.holding) {
      // Held bytes are bounded by HOLD_LIMIT, so the runtime is credited at once.
      this.creditRuntime(length);
      if (length > 0) (this.heldData ??= []).push(data);
      this.heldBytes += length;
      if (this.heldBytes > HOLD_LIMIT) this.flushHeld();
    } else if (!this.client.sendResponseData(data, this.creditRuntime)) {
      this.creditRuntime(length);
    }
    if (end) this.protocolError('ended the call without a status');
  }

  onStreamFailed(failure: StreamFailure): void {
    if (this.settled) return;
    const upstream = this.request.upstream;
    const code = failure.code === undefined ? 'none' : String(failure.code);
    if (!this.started) {
      const why =
        failure.kind === 'refused'
          ? new Error('the runtime refused the call before processing it')
          : new Error(`stream reset (code ${code})`);
      this.settleWith(outcomeOfError(upstream.unavailable(failure.error ?? why)));
      return;
    }
    const why = failure.error ? failure.error.message : `reset code ${code}`;
    this.settleWith(
      outcomeOfError(new ProxyError('UPSTREAM_PROTOCOL', `cri-proxy: runtime "${upstream.name}" ended the call without a status (${why})`)),
    );
  }

  private sendHeaders(fields: readonly string[]): void {
    this.headersSent = true;
    this.client.sendResponseHeaders(fields);
  }

  private settleWithTrailers(fields: readonly string[]): void {
    this.trailers = fields;
    const { code, message } = readStatusFields(fields);
    this.settleWith({ code, message, fromProxy: false });
  }

  private protocolError(problem: string): void {
    this.fail(new ProxyError('UPSTREAM_PROTOCOL', `cri-proxy: runtime "${this.request.upstream.name}" ${problem}`));
  }

  private settleWith(outcome: CallOutcome): void {
    if (this.settled) return;
    this.settled = true;
    this.settle?.(outcome);
  }
}
