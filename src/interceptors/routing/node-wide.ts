/** Unary calls answered for the whole node: merged lists, and calls every backend must accept. */
import { GrpcStatus } from '../../errors';
import type { NamedReply } from './backend-call';
import { callEvery, failuresOf, fanOutFailure, type BuiltAnswer, type FanOutCall, type RoutedAnswer } from './fan-out';
import { mergeListBodies, type ListMerge } from './list-merge';

/** The size an answer routing merges may reach (kubelet refuses larger messages), and who is told when one is over. */
export interface AnswerLimit {
  readonly bytes: number;
  readonly exceeded: (method: string) => void;
}

const MIB = 1024 * 1024;

function size(bytes: number): string {
  return bytes >= MIB ? `${(bytes / MIB).toFixed(1)} MiB (${bytes} bytes)` : `${bytes} bytes`;
}

/**
 * A merged answer over the limit is never sent: the client would refuse it with an error that names neither the
 * size nor the runtimes. RESOURCE_EXHAUSTED instead, naming both. Undefined when the answer fits.
 */
export function overLimit(
  method: string,
  answer: BuiltAnswer,
  replies: readonly NamedReply[],
  limit: AnswerLimit,
): BuiltAnswer | undefined {
  const bytes = answer.body?.length ?? 0;
  if (bytes <= limit.bytes) return undefined;
  limit.exceeded(method);
  const parts = replies.map((r) => `backend "${r.backend}" answered ${size(r.reply.body?.length ?? 0)}`).join(', ');
  return {
    code: GrpcStatus.RESOURCE_EXHAUSTED,
    message:
      `cri-proxy: the ${method} answer merged from every backend is ${size(bytes)}, over the ${size(limit.bytes)} a client ` +
      `accepts (maxMergedAnswerBytes): ${parts}`,
    body: undefined,
  };
}

/** Every backend's list, merged; any failure fails the whole call (a partial list would read as pods gone). */
export async function mergedList(
  c: FanOutCall,
  method: string,
  path: string,
  request: Buffer,
  merge: ListMerge,
  limit?: AnswerLimit,
): Promise<BuiltAnswer> {
  const replies = await callEvery(c, c.backends, path, request);
  const failed = failuresOf(replies);
  if (failed.length > 0) return fanOutFailure(method, failed);
  const answer: BuiltAnswer = {
    code: GrpcStatus.OK,
    message: '',
    body: mergeListBodies(
      merge,
      replies.map((r) => ({ backend: r.backend, body: r.reply.body })),
    ),
  };
  return (limit === undefined ? undefined : overLimit(method, answer, replies, limit)) ?? answer;
}

/** Sent to every backend (UpdateRuntimeConfig): the default backend's answer when all succeed. */
export async function toEveryBackend(c: FanOutCall, method: string, path: string, request: Buffer): Promise<RoutedAnswer> {
  const replies = await callEvery(c, c.backends, path, request);
  const failed = failuresOf(replies);
  if (failed.length > 0) return { from: 'proxy', answer: fanOutFailure(method, failed) };
  return { from: 'backend', ...(replies[0] as (typeof replies)[number]) };
}
