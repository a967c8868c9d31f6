/**
 * Routing's own calls to the runtimes, on the data plane's runtime client: the `CallBackend`/`StreamBackend`
 * contract (never rejects; an unreachable runtime answers UNAVAILABLE naming it), and the metadata those calls
 * carry for a client's call. They do not go through the interceptor chain.
 */
import { GrpcStatus, ProxyError, errorMessage } from '../../errors';
import type { Backends } from '../../chain/backends';
import type { CallContext } from '../../chain/types';
import type { BackendReply, CallBackend, MetadataFields, StreamBackend } from './backend-call';

/**
 * Bound of routing's own unary calls for a client call without a deadline (kubelet always sends one): kubelet's
 * default runtime request timeout.
 */
const NO_DEADLINE_TIMEOUT_MS = 120_000;
/** `grpc-timeout` carries at most 8 digits. */
const MAX_TIMEOUT_MS = 99_999_999;

/** Headers of the client's call that describe its transport, not its metadata: each own call sets its own. */
const TRANSPORT_HEADERS = new Set(['content-type', 'te', 'grpc-timeout', 'grpc-encoding', 'grpc-accept-encoding', 'user-agent']);

/** What routing's own calls for this client call send: the client's metadata, with what interceptors set on it. */
export function metadataForBackends(ctx: CallContext): string[] {
  const fields: string[] = [];
  for (const [name, value] of ctx.metadata.entries()) if (!TRANSPORT_HEADERS.has(name)) fields.push(name, value);
  return ctx.upstreamMetadata.size === 0 ? fields : ctx.upstreamMetadata.applyTo(fields);
}

const failed = (code: number, message: string): BackendReply => ({ code, message, trailers: [] });

export function backendCalls(router: Backends): { readonly call: CallBackend; readonly stream: StreamBackend } {
  const call: CallBackend = async (backend, path, request, metadata: MetadataFields, deadline) => {
    const upstream = router.get(backend);
    if (upstream === undefined) return failed(GrpcStatus.UNAVAILABLE, `no backend named "${backend}" is configured`);
    const timeoutMs = deadline === undefined ? NO_DEADLINE_TIMEOUT_MS : Math.min(MAX_TIMEOUT_MS, deadline - Date.now());
    if (timeoutMs <= 0) return failed(GrpcStatus.DEADLINE_EXCEEDED, `the deadline expired before ${path} reached runtime "${backend}"`);
    try {
      const reply = await upstream.call(path, request, { timeoutMs, metadata });
      return { code: reply.code, message: reply.message, body: reply.body, trailers: reply.trailers };
    } catch (err) {
      const error = err instanceof ProxyError ? err : upstream.unavailable(err);
      return failed(error.grpcStatus, errorMessage(error));
    }
  };
  const stream: StreamBackend = (backend, path, request, metadata, deadline, signal, onMessage) => {
    const upstream = router.get(backend);
    if (upstream === undefined) return Promise.resolve(failed(GrpcStatus.UNAVAILABLE, `no backend named "${backend}" is configured`));
    const bounded = deadline === undefined ? undefined : Math.min(deadline, Date.now() + MAX_TIMEOUT_MS);
    return upstream.stream(path, request, { metadata, deadline: bounded, signal }, onMessage);
  };
  return { call, stream };
}
