/** Calls that go to every backend at once, and the one status such a call fails with when some did not answer. */
import { GrpcStatus, errorMessage } from '../../errors';
import type { BackendReply, BackendStatus, CallBackend, NamedReply, MetadataFields } from './backend-call';

/** An answer the proxy built itself (a merged list, or the failure of a fan-out call). */
export interface BuiltAnswer {
  readonly code: number;
  readonly message: string;
  /** The response message (unframed) when `code` is OK. */
  readonly body: Buffer | undefined;
}

export interface BackendFailure {
  readonly backend: string;
  readonly code: number;
  readonly message: string;
}

const statusNames = new Map<number, string>(Object.entries(GrpcStatus).map(([name, code]) => [code, name]));

export function statusName(code: number): string {
  return statusNames.get(code) ?? `code ${code}`;
}

function unreachable(err: unknown): BackendReply {
  return { code: GrpcStatus.UNAVAILABLE, message: errorMessage(err), trailers: [] };
}

/** What a call sent to several backends shares. */
export interface FanOutCall {
  readonly call: CallBackend;
  /** Backend order, the default first. */
  readonly backends: readonly string[];
  readonly metadata: MetadataFields;
  readonly deadline: number | undefined;
}

/** A backend's answer to pass on as it is (bytes, status, trailers), or one the proxy built. */
export type RoutedAnswer =
  | { readonly from: 'backend'; readonly backend: string; readonly reply: BackendReply }
  | { readonly from: 'proxy'; readonly answer: BuiltAnswer };

/** One unary call per backend of `to`, concurrently; answers in that order. A rejected call counts as UNAVAILABLE. */
export async function callEvery(c: FanOutCall, to: readonly string[], path: string, request: Buffer): Promise<NamedReply[]> {
  return Promise.all(
    to.map(async (backend) => {
      let reply: BackendReply;
      try {
        reply = await c.call(backend, path, request, c.metadata, c.deadline);
      } catch (err) {
        reply = unreachable(err);
      }
      return { backend, reply };
    }),
  );
}

/** The backends whose status is not OK, in the given order. */
export function failuresOf(replies: readonly { readonly backend: string; readonly reply: BackendStatus }[]): BackendFailure[] {
  return replies
    .filter((r) => r.reply.code !== GrpcStatus.OK)
    .map((r) => ({ backend: r.backend, code: r.reply.code, message: r.reply.message }));
}

/**
 * The status of a call that needed every backend when some failed: the code they all gave (UNIMPLEMENTED, say,
 * so kubelet falls back to an older method), else UNAVAILABLE; the message names each failed backend.
 */
export function fanOutFailure(method: string, failures: readonly BackendFailure[]): BuiltAnswer {
  const codes = new Set(failures.map((f) => f.code));
  const [only] = codes;
  const code = codes.size === 1 && only !== undefined ? only : GrpcStatus.UNAVAILABLE;
  const detail = failures.map((f) => `backend "${f.backend}" failed: ${statusName(f.code)}: ${f.message}`).join('; ');
  return { code, message: `cri-proxy: ${method} needs every backend; ${detail}`, body: undefined };
}
