import type { ProxyError } from '../errors';
import { decodeMessage, encodeMessage, type DecodedMessage } from '../messages/codec';

/**
 * `CallContext.backend` of a call answered from every backend at once (a merged list, `Status`, events): what
 * metrics, traces, audit records and logs show for it. Never a backend's name (those cannot contain `*`).
 */
export const EVERY_BACKEND = '*';

/**
 * Bound of the proxy's own calls for a client call without a deadline (kubelet always sends one): kubelet's
 * default runtime request timeout.
 */
const NO_DEADLINE_TIMEOUT_MS = 120_000;
/** `grpc-timeout` carries at most 8 digits. */
const MAX_TIMEOUT_MS = 99_999_999;

/** The time a call the proxy makes for a client's call may take: what is left of its deadline (0 or less: none). */
export function ownCallTimeoutMs(deadline: number | undefined, now = Date.now()): number {
  return deadline === undefined ? NO_DEADLINE_TIMEOUT_MS : Math.min(MAX_TIMEOUT_MS, deadline - now);
}

/** An absolute deadline a stream the proxy opens for a client's call may use (none when the client gave none). */
export function ownStreamDeadline(deadline: number | undefined, now = Date.now()): number | undefined {
  return deadline === undefined ? undefined : Math.min(deadline, now + MAX_TIMEOUT_MS);
}

/** A runtime's connection as last seen: up, or when and why it last failed. */
export interface BackendHealth {
  readonly up: boolean;
  readonly lastError: string | undefined;
  readonly lastErrorAt: number | undefined;
}

export interface UnaryReply {
  readonly code: number;
  readonly message: string;
  /** The response message (unframed), when there was exactly one. */
  readonly body: Buffer | undefined;
  /** The runtime's trailers (or trailers-only response) as received. */
  readonly trailers: readonly string[];
}

export interface CallOptions {
  readonly timeoutMs: number;
  /** Metadata sent with the call (names and values alternating), e.g. a client's, passed on. */
  readonly metadata?: readonly string[];
}

export interface StreamOptions {
  /** Metadata sent with the call (names and values alternating). */
  readonly metadata?: readonly string[];
  /** Absolute deadline in ms since the epoch; none when undefined. */
  readonly deadline?: number | undefined;
  /** Aborting it cancels the call (RST_STREAM CANCEL); the call then ends CANCELLED. */
  readonly signal?: AbortSignal;
}

export interface StreamEnd {
  readonly code: number;
  readonly message: string;
  readonly trailers: readonly string[];
}

/** A runtime the proxy forwards to, as an interceptor sees it: its name, its health, and calls of its own. */
export interface Backend {
  readonly name: string;
  readonly status: BackendHealth;
  /** A unary call on the proxy's own behalf (readiness, image lookups, routing), outside the chain: bounded in time and size. */
  call(path: string, request: Buffer, options: number | CallOptions): Promise<UnaryReply>;
  /**
   * A server-streaming call on the proxy's own behalf (routing's merged streams). Each response message goes to
   * `onMessage` in order; while a promise it returned is pending, nothing more is delivered and the runtime is
   * not credited. Never rejects: an unreachable runtime ends the call UNAVAILABLE.
   */
  stream(path: string, request: Buffer, options: StreamOptions, onMessage: (message: Buffer) => void | Promise<void>): Promise<StreamEnd>;
  /** A clear UNAVAILABLE error for a call that could not reach the runtime. */
  unavailable(cause: unknown): ProxyError;
}

/** The backends as interceptors see them: the one a call goes to unless an interceptor names another. */
export interface Backends {
  readonly defaultBackend: string;
  readonly upstreams: Iterable<Backend>;
  get(name: string): Backend | undefined;
  /** The backend named, else the default one; NO_BACKEND when none has that name. */
  pick(requested: string | undefined): Backend;
}

/** Encodes, calls and decodes one CRI method; a non-OK status is returned for the caller to inspect. */
export async function callRuntimeTyped(
  backend: Backend,
  method: { path: string; requestType: string; responseType: string },
  request: Readonly<Record<string, unknown>>,
  timeoutMs: number,
): Promise<{ code: number; message: string; response: DecodedMessage | undefined }> {
  const reply = await backend.call(method.path, encodeMessage(method.requestType, request), timeoutMs);
  const response = reply.code === 0 && reply.body ? decodeMessage(method.responseType, reply.body) : undefined;
  return { code: reply.code, message: reply.message, response };
}
