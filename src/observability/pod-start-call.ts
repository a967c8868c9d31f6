/**
 * One call of a pod start as the tracker reads it: the request's bytes, kept before the call goes on (once
 * forwarded unread it is gone) with the caller's trace context, and once it settled, its fields (read on the wire,
 * see pod-start-wire.ts) and the phase it was.
 */
import type { CallContext, CriField } from '../chain/types';
import { GrpcStatus } from '../errors';
import { WireFormatError } from '../messages/protobuf-wire';
import { elapsedMs, instantAt } from './clock';
import { podStartImages } from './pod-start-phases';
import { wireStrings } from './pod-start-wire';
import type { ObservedCall, PodStartPhase, PodStartPhaseName, TraceContextRef } from './pod-start-types';

/** What prepareCall() saw before the call went on: the request message, and the caller's trace context. */
const PREPARED_KEY = Symbol('pod-start-tracker.prepared');
interface Prepared {
  readonly request: Buffer | undefined;
  readonly caller: TraceContextRef | undefined;
}

/** A settled call of a pod start. */
export interface SettledCall {
  /** A request field the method table names, undefined when absent or empty. */
  readonly req: (field: CriField) => string | undefined;
  /** A response field of a call that succeeded, undefined when absent or empty. */
  readonly res: (field: CriField) => string | undefined;
  /** The call as a phase of its pod's start. */
  readonly phase: (name: PodStartPhaseName, detail: string | undefined, image?: string) => PodStartPhase;
  /** The image a container is created from, as the user wrote it when kubelet sends that. */
  readonly containerImage: () => string | undefined;
}

/** Keeps the request message (read by `read`) and the caller's trace context on the call, once. Never rejects. */
export async function prepareCall(ctx: CallContext, read: () => Promise<Buffer | undefined>): Promise<void> {
  if (ctx.state.has(PREPARED_KEY)) return;
  const caller = callerOf(ctx);
  try {
    const prepared: Prepared = { request: await read(), caller };
    ctx.state.set(PREPARED_KEY, prepared);
  } catch {
    // An unreadable request fails the call on its own; there is nothing to track.
  }
}

/**
 * The settled call, or undefined when its request was not kept or its bytes (or those of its answer) are no
 * protobuf message: such a call goes untracked, as one the runtime will judge.
 */
export function settledCall(ctx: CallContext, call: ObservedCall): SettledCall | undefined {
  const prepared = ctx.state.get(PREPARED_KEY) as Prepared | undefined;
  const request = prepared?.request;
  if (request === undefined) return undefined;
  const code = call.code ?? ctx.outcome?.code ?? GrpcStatus.UNKNOWN;
  const method = ctx.method;
  let req: Fields;
  let res: Fields;
  let images: (string | undefined)[];
  try {
    // Every field read at once, so that bad bytes leave the call untracked rather than half recorded.
    // The request is walked once for the table's fields and the places its image may be named (keyed by index).
    const imagePaths = podStartImages.of(method) ?? [];
    req = wireStrings(request, method.requestType, { ...method.requestFields, ...Object.fromEntries(imagePaths.entries()) });
    images = imagePaths.map((_, i) => req[String(i)]);
    const answer = code === GrpcStatus.OK ? ctx.responseBytes() : undefined;
    res = answer === undefined ? {} : wireStrings(answer, method.responseType, method.responseFields);
  } catch (err) {
    if (err instanceof WireFormatError) return undefined;
    throw err;
  }
  const start = instantAt(call.startedAt ?? ctx.startedAt);
  const end = instantAt(call.endedAt ?? process.hrtime.bigint());
  const message = code === GrpcStatus.OK ? undefined : (call.message ?? ctx.outcome?.message);
  const links = [...(prepared?.caller ? [prepared.caller] : []), ...(call.links ?? [])];
  return {
    req: (field) => req[field],
    res: (field) => res[field],
    phase: (name, detail, image) => ({ phase: name, detail, image, start, end, durationMs: elapsedMs(start, end), code, message, links }),
    // The image as the user wrote it when kubelet sends that, else the one it resolved (the method table says where).
    containerImage: () => images.find((image) => image !== undefined),
  };
}

type Fields = Partial<Record<string, string>>;

function callerOf(ctx: CallContext): TraceContextRef | undefined {
  const traceparent = ctx.metadata.get('traceparent');
  if (traceparent === undefined) return undefined;
  const tracestate = ctx.metadata.get('tracestate');
  return tracestate === undefined ? { traceparent } : { traceparent, tracestate };
}
