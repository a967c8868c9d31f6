/**
 * How routing reaches a runtime on its own: the data plane hands it these two functions. Both take the request
 * as the exact bytes to send (one protobuf message, not gRPC-framed) and never reject for a gRPC status: a
 * runtime that cannot be reached answers UNAVAILABLE like one that says so.
 */

/**
 * gRPC metadata to send, as a header list (names and values alternating): lowercase names, no pseudo-headers,
 * `-bin` values already base64 as on the wire.
 */
export type MetadataFields = readonly string[];

/** Trailing metadata as the runtime sent it, names and values alternating (grpc-status and grpc-message included). */
export type Trailers = readonly string[];

export interface BackendStatus {
  readonly code: number;
  readonly message: string;
  readonly trailers: Trailers;
}

export interface BackendReply extends BackendStatus {
  /** The response message (unframed); undefined when the runtime sent none (any non-OK status). */
  readonly body?: Buffer | undefined;
}

/** A unary call on `backend`; `deadline` is absolute (ms since the epoch), undefined for none. */
export type CallBackend = (
  backend: string,
  path: string,
  request: Buffer,
  metadata: MetadataFields,
  deadline: number | undefined,
) => Promise<BackendReply>;

/**
 * A server-streaming call on `backend`. `onMessage` gets each response message (unframed) in order; when it
 * returns a promise, the next message is not delivered, and the runtime's stream not read further, until it
 * settles (so a slow consumer slows the runtime, never grows a buffer). Resolves with the stream's status once
 * it has ended; aborting `signal` cancels the call (it then resolves CANCELLED).
 */
export type StreamBackend = (
  backend: string,
  path: string,
  request: Buffer,
  metadata: MetadataFields,
  deadline: number | undefined,
  signal: AbortSignal,
  onMessage: (message: Buffer) => void | Promise<void>,
) => Promise<BackendStatus>;

/** A backend's answer, tagged with its name. */
export interface NamedReply {
  readonly backend: string;
  readonly reply: BackendReply;
}
