import type { ProxyErrorCode } from '../errors';
import type { Logger } from '../log';
import type { DecodedMessage } from '../messages/codec';
import type { Metadata, OutgoingMetadata } from './metadata';

/** How a CRI call moves: one request and one response, or one request and a stream of responses. */
export type CallKind = 'unary' | 'server-stream';

/** Identity fields interceptors ask for; where each lies differs per method (see method-table.ts). */
export type CriField = 'sandboxId' | 'podName' | 'podNamespace' | 'podUid' | 'containerId' | 'containerName' | 'image' | 'runtimeHandler';

export type FieldPaths = Readonly<Partial<Record<CriField, string>>>;

export interface MethodInfo {
  /** HTTP/2 `:path`, e.g. `/runtime.v1.RuntimeService/RunPodSandbox`. */
  readonly path: string;
  /** Fully qualified service, e.g. `runtime.v1.RuntimeService`. */
  readonly service: string;
  /** Method name, e.g. `RunPodSandbox`. */
  readonly name: string;
  /** False for methods not in the table (future CRI versions): forwarded, never decoded. */
  readonly known: boolean;
  readonly kind: CallKind | 'unknown';
  /** Changes state on the node (audit logs these by default). */
  readonly mutating: boolean;
  /** Called by kubelet in a loop (List*, *Status): logged at debug only. */
  readonly polling: boolean;
  /** A stream with no end of its own (a watch): ended at shutdown, so clients subscribe again elsewhere. */
  readonly watch: boolean;
  /** Fully qualified protobuf message names, e.g. `runtime.v1.RunPodSandboxRequest`. */
  readonly requestType: string | undefined;
  readonly responseType: string | undefined;
  /** Dotted proto field paths (snake_case) of identity fields in the request. */
  readonly requestFields: FieldPaths;
  /** Dotted proto field paths of identity fields in the (unary) response. */
  readonly responseFields: FieldPaths;
}

/** One message of a stream, decoded only if asked. `bytes` are the message as it crossed the wire. */
export interface StreamMessage {
  readonly bytes: Buffer;
  decode(): DecodedMessage | undefined;
}

/** How the call ended; set once the runtime (or the proxy) has answered. */
export interface CallOutcome {
  /** The gRPC status code the client gets. */
  readonly code: number;
  readonly message: string;
  /** True when the proxy produced the status itself rather than relaying the runtime's. */
  readonly fromProxy: boolean;
  /** The proxy's stable error code, when the proxy failed the call itself (see errors.ts). */
  readonly errorCode?: ProxyErrorCode | undefined;
}

/** An answer the proxy gives itself instead of a runtime's (a merged list, a runtime's answer relayed). */
export interface OwnAnswer {
  /** Response messages, unframed protobuf bytes; none for an error. */
  readonly messages?: readonly Buffer[];
  /** The status; OK when absent. */
  readonly code?: number;
  readonly message?: string;
  /** Trailers to send as they are (names and values alternating, `grpc-status` among them), e.g. a runtime's. */
  readonly trailers?: readonly string[];
}

/** A response the proxy streams itself (a stream merged from several runtimes, say). */
export interface ResponseStream {
  /** Sends one message (unframed protobuf bytes); false when the client is not keeping up: wait for `drained`. */
  write(message: Buffer): boolean;
  /** Resolves once the client has taken what was written (or the call ended). */
  drained(): Promise<void>;
  /** Ends the response with a status (OK by default). */
  end(code?: number, message?: string): void;
  /** True once the client went away or `end` was called. */
  readonly closed: boolean;
}

export interface CallContext {
  readonly method: MethodInfo;
  /** The client's gRPC metadata, as received. */
  readonly metadata: Metadata;
  /** Absolute deadline in ms since the epoch, from `grpc-timeout`; undefined if none. */
  readonly deadline: number | undefined;
  /** `process.hrtime.bigint()` when the call arrived. */
  readonly startedAt: bigint;
  /** Aborted when the client cancels or the call otherwise ends early. */
  readonly signal: AbortSignal;
  readonly log: Logger;
  /** Backend chosen for the call; routing may set it before `next()`. */
  backend: string | undefined;
  /** Metadata sent to the runtime on top of (or instead of) the client's (e.g. an injected `traceparent`). */
  readonly upstreamMetadata: OutgoingMetadata;
  /** Per-call state shared between interceptors, keyed by whatever each chooses. */
  readonly state: Map<unknown, unknown>;
  /** The request, decoded on first call (and only then read from the client). */
  request(): Promise<DecodedMessage | undefined>;
  /** The request message as the client sent it (read whole on first call); undefined for unknown methods. */
  requestBytes(): Promise<Buffer | undefined>;
  /**
   * The first request message as the client sent it (unframed), as soon as it is here: for a method outside the
   * table, whose shape the proxy does not know, without waiting for the rest of the request, which then goes up
   * as the client sends it. Undefined when the request ends before one whole message, or it is compressed. For
   * a method of the table, the request (`requestBytes()`).
   */
  firstRequestMessage(): Promise<Buffer | undefined>;
  /**
   * The unary response after `next()` resolved (the runtime's, or the one message of an answer given with
   * `respond`), for methods whose table row names response fields; undefined for other methods, streams, errors
   * and unknown methods.
   */
  response(): DecodedMessage | undefined;
  /** The message of that response as the client got it (unframed protobuf bytes), undecoded; when `response()` has one. */
  responseBytes(): Buffer | undefined;
  /** Answers the call without a runtime (messages it built, a status, a runtime's answer relayed); instead of `next()`. */
  respond(answer: OwnAnswer): void;
  /**
   * The request message the runtime gets instead of the client's (unframed protobuf bytes), e.g. with a field
   * rewritten; only after `requestBytes()`. Interceptors keep seeing the client's request.
   */
  replaceRequest(message: Buffer): void;
  /** Opens a response the proxy streams itself; instead of `next()`. The call ends when it is ended. */
  openResponse(): ResponseStream;
  /** Observe each response message of a stream as it passes; never buffers. Register before `next()`. */
  onResponseMessage(observer: (message: StreamMessage) => void): void;
  /** Set after `next()` resolves (or rejects). */
  readonly outcome: CallOutcome | undefined;
  /** Nanoseconds spent waiting on the runtime (from request sent to last byte); 0 if it was never called. */
  readonly upstreamNanos: bigint;
  /** Set on a call an interceptor made itself on a client's behalf (see own-call.ts): whose, and who made it. */
  readonly onBehalfOf?: OnBehalfOf;
}

/** The client's call an own call was made for, and the interceptor that made it. */
export interface OnBehalfOf {
  readonly call: CallContext;
  readonly by: string;
}

export type Next = () => Promise<void>;

export interface Interceptor {
  readonly name: string;
  intercept(ctx: CallContext, next: Next): Promise<void>;
  /**
   * The methods it acts on, when not all: the chain does not enter it for any other (a call pays nothing for an
   * interceptor that has nothing to do with it). Asked once per method, never per call.
   */
  appliesTo?(method: MethodInfo): boolean;
  /** Gets ready before the first call (loads what it loads lazily); awaited, briefly, before calls are taken. */
  warmUp?(): Promise<void>;
  /** Releases resources (files, exporters) on shutdown or when replaced on reload. */
  close?(): Promise<void>;
}
