/** Unary calls answered for the whole node: merged lists, and calls every backend must accept. */
import { GrpcStatus } from '../../errors';
import { callEvery, failuresOf, fanOutFailure, type BuiltAnswer, type FanOutCall, type RoutedAnswer } from './fan-out';
import { mergeListBodies, type ListMerge } from './list-merge';

/** Every backend's list, merged; any failure fails the whole call (a partial list would read as pods gone). */
export async function mergedList(c: FanOutCall, method: string, path: string, request: Buffer, merge: ListMerge): Promise<BuiltAnswer> {
  const replies = await callEvery(c, c.backends, path, request);
  const failed = failuresOf(replies);
  if (failed.length > 0) return fanOutFailure(method, failed);
  return {
    code: GrpcStatus.OK,
    message: '',
    body: mergeListBodies(
      merge,
      replies.map((r) => ({ backend: r.backend, body: r.reply.body })),
    ),
  };
}

/** Sent to every backend (UpdateRuntimeConfig): the default backend's answer when all succeed. */
export async function toEveryBackend(c: FanOutCall, method: string, path: string, request: Buffer): Promise<RoutedAnswer> {
  const replies = await callEvery(c, c.backends, path, request);
  const failed = failuresOf(replies);
  if (failed.length > 0) return { from: 'proxy', answer: fanOutFailure(method, failed) };
  return { from: 'backend', ...(replies[0] as (typeof replies)[number]) };
}
