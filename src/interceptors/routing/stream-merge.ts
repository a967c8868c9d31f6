/**
 * The Stream* list methods merged: every backend's stream at once, each message passed on as it arrives (as the
 * runtime sent it, unless it repeated an item already sent). The merged stream ends OK only when every
 * backend's did; the first failure cancels the others and ends it with a status naming the backend.
 */
import { GrpcStatus, ProxyError, errorMessage } from '../../errors';
import type { BackendStatus, MetadataFields, StreamBackend } from './backend-call';
import { fanOutFailure, type BackendFailure, type BuiltAnswer } from './fan-out';
import { filterStreamMessage, ListCollector, type ListMerge } from './list-merge';

export interface StreamMergeOptions {
  readonly stream: StreamBackend;
  /** In backend order, the default first. */
  readonly backends: readonly string[];
  /** The method's name, for messages. */
  readonly method: string;
  readonly path: string;
  readonly request: Buffer;
  readonly metadata: MetadataFields;
  readonly deadline: number | undefined;
  /** The client's call: aborting it cancels every backend's stream. */
  readonly signal: AbortSignal;
  readonly merge: ListMerge;
  /** Sends one message to the client; the next is not sent (nor read from its backend) before it settles. */
  readonly send: (message: Buffer) => Promise<void>;
}

/** Runs the merged stream; resolves with the status to end the client's stream with (never rejects). */
export async function mergeStreams(options: StreamMergeOptions): Promise<BuiltAnswer> {
  const { backends, signal } = options;
  const cancel = new AbortController();
  const onClientAbort = (): void => cancel.abort();
  signal.addEventListener('abort', onClientAbort, { once: true });
  if (signal.aborted) cancel.abort();

  const collector = new ListCollector(options.merge);
  const failures: BackendFailure[] = [];
  let fault: BuiltAnswer | undefined;
  const stop = (): void => {
    cancel.abort();
  };
  // One chain for all backends: messages go out one at a time, in the order they arrived.
  let sending: Promise<void> = Promise.resolve();
  const deliver = (backend: string, message: Buffer): Promise<void> => {
    sending = sending.then(async () => {
      if (cancel.signal.aborted) return;
      try {
        const filtered = filterStreamMessage(collector, backend, message);
        if (filtered !== undefined) await options.send(filtered);
      } catch (err) {
        fault ??=
          err instanceof ProxyError
            ? { code: err.grpcStatus, message: err.message, body: undefined }
            : {
                code: GrpcStatus.CANCELLED,
                message: `cri-proxy: ${options.method}: sending to the client failed: ${errorMessage(err)}`,
                body: undefined,
              };
        stop();
      }
    });
    return sending;
  };

  const run = async (backend: string): Promise<void> => {
    let status: BackendStatus;
    try {
      status = await options.stream(backend, options.path, options.request, options.metadata, options.deadline, cancel.signal, (m) =>
        deliver(backend, m),
      );
    } catch (err) {
      status = { code: GrpcStatus.UNAVAILABLE, message: errorMessage(err), trailers: [] };
    }
    // A stream this merge cancelled did not fail on its own.
    if (status.code === GrpcStatus.OK || cancel.signal.aborted) return;
    failures.push({ backend, code: status.code, message: status.message });
    stop();
  };

  try {
    await Promise.all(backends.map(run));
    await sending;
  } finally {
    signal.removeEventListener('abort', onClientAbort);
  }
  if (signal.aborted) return { code: GrpcStatus.CANCELLED, message: 'cri-proxy: the client cancelled the call', body: undefined };
  if (fault !== undefined) return fault;
  if (failures.length > 0) {
    const order = (f: BackendFailure): number => backends.indexOf(f.backend);
    return fanOutFailure(
      options.method,
      [...failures].sort((a, b) => order(a) - order(b)),
    );
  }
  return { code: GrpcStatus.OK, message: '', body: undefined };
}
