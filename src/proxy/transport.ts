import type { CallOutcome, OwnAnswer, ResponseStream, StreamMessage } from '../chain/types';
import type { Upstream } from './upstream';

/** How a call is relayed to a runtime. */
export interface ForwardRequest {
  readonly upstream: Upstream;
  /** The header list for the runtime (names and values alternating, pseudo-headers first). */
  readonly headers: readonly string[];
  /** A known unary call: its response is held (up to a bound) and sent with its status in one go. */
  readonly holdResponse: boolean;
  /**
   * The request is one message (a known method): it goes up once complete, so one that ends malformed (its
   * trailers, a `content-length` its DATA does not match) never reaches the runtime. Complete on arrival as a rule.
   */
  readonly wholeRequest: boolean;
  /** Keep the whole response body for `responseBody()` (methods whose response the chain reads). */
  readonly keepResponse: boolean;
  readonly maxMessageBytes: number;
  readonly observers: readonly ((message: StreamMessage) => void)[] | undefined;
  readonly responseType: string | undefined;
}

/**
 * The transport port: what a call needs of the connection it arrived on. The call context interceptors see is
 * built on this and never sees HTTP/2.
 */
export interface CallTransport {
  /** The request header list as received (names and values alternating, pseudo-headers first). */
  readonly fields: readonly string[];
  /** True once the client cancelled the call or went away. */
  readonly cancelled: boolean;
  /** Called once if the client cancels the call or goes away. */
  onCancel(listener: () => void): void;
  /** The whole request body (gRPC-framed), read before forwarding; the transport credits the client itself. */
  readRequest(): Promise<Buffer>;
  /**
   * The first message of the request (unframed) once it is here whole, undefined if the request ends (or fails)
   * before one, or it is compressed. What follows it is held until the call is forwarded, then passed on as it comes.
   */
  readFirstMessage(): Promise<Buffer | undefined>;
  /** Relays the call to a runtime; resolves (never rejects) when the runtime's side of the call is over. */
  forward(request: ForwardRequest): Promise<CallOutcome>;
  /** The framed response body of a forwarded call, when `keepResponse` was asked for. */
  responseBody(): Buffer | undefined;
  /** The proxy's own answer, sent when the call finishes. */
  respond(answer: OwnAnswer): void;
  /** The framed request body the runtime gets instead of the one the client sent (read first). */
  replaceRequest(body: Buffer): void;
  /** A response the proxy streams itself; `onEnd` reports the status it ended with. */
  openResponse(onEnd: (outcome: CallOutcome) => void): ResponseStream;
  /** Ends the call early with `outcome` (the runtime's stream, or the proxy's own response, is cut short). */
  interrupt(outcome: CallOutcome): void;
  /** Sends the call's final status: the runtime's as it sent it, or the proxy's own. */
  finish(outcome: CallOutcome): void;
}
