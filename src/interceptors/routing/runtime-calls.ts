/**
 * Routing's own calls to the runtimes, on the data plane's runtime client: the `CallBackend`/`StreamBackend`
 * contract (never rejects; an unreachable runtime answers UNAVAILABLE naming it). They do not go through the
 * interceptor chain (the image pulls routing makes for kubelet do: see image-flow.ts).
 */
import { GrpcStatus, ProxyError, errorMessage } from '../../errors';
import { ownCallTimeoutMs, ownStreamDeadline, type Backends } from '../../chain/backends';
import type { BackendReply, CallBackend, MetadataFields, StreamBackend } from './backend-call';

const failed = (code: number, message: string): BackendReply => ({ code, message, trailers: [] });

export function backendCalls(router: Backends): { readonly call: CallBackend; readonly stream: StreamBackend } {
  const call: CallBackend = async (backend, path, request, metadata: MetadataFields, deadline) => {
    const upstream = router.get(backend);
    if (upstream === undefined) return failed(GrpcStatus.UNAVAILABLE, `no backend named "${backend}" is configured`);
    const timeoutMs = ownCallTimeoutMs(deadline);
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
    return upstream.stream(path, request, { metadata, deadline: ownStreamDeadline(deadline), signal }, onMessage);
  };
  return { call, stream };
}
