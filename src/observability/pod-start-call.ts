/**
 * One call of a pod start as the tracker reads it: the request, kept before the call goes on (once forwarded
 * unread it is gone) with the caller's trace context, and once it settled, its fields and the phase it was.
 */
import type { CallContext, CriField, MethodInfo } from '../chain/types';
import { GrpcStatus } from '../errors';
import type { DecodedMessage } from '../messages/codec';
import { fieldAt } from '../messages/field-at';
import { elapsedMs, instantAt } from './clock';
import { podStartImages } from './pod-start-phases';
import type { ObservedCall, PodStartPhase, PodStartPhaseName, TraceContextRef } from './pod-start-types';

/** What prepareCall() saw before the call went on: the request, and the caller's trace context. */
const PREPARED_KEY = Symbol('pod-start-tracker.prepared');
interface Prepared {
  readonly request: DecodedMessage | undefined;
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

/** Keeps the request (read by `read`) and the caller's trace context on the call, once. Never rejects. */
export async function prepareCall(ctx: CallContext, read: () => Promise<DecodedMessage | undefined>): Promise<void> {
  if (ctx.state.has(PREPARED_KEY)) return;
  const caller = callerOf(ctx);
  try {
    const prepared: Prepared = { request: await read(), caller };
    ctx.state.set(PREPARED_KEY, prepared);
  } catch {
    // An unreadable request fails the call on its own; there is nothing to track.
  }
}

/** The settled call, or undefined when its request was not kept. */
export function settledCall(ctx: CallContext, call: ObservedCall): SettledCall | undefined {
  const prepared = ctx.state.get(PREPARED_KEY) as Prepared | undefined;
  const request = prepared?.request;
  if (request === undefined) return undefined;
  const start = instantAt(call.startedAt ?? ctx.startedAt);
  const end = instantAt(call.endedAt ?? process.hrtime.bigint());
  const code = call.code ?? ctx.outcome?.code ?? GrpcStatus.UNKNOWN;
  const message = code === GrpcStatus.OK ? undefined : (call.message ?? ctx.outcome?.message);
  const links = [...(prepared?.caller ? [prepared.caller] : []), ...(call.links ?? [])];
  return {
    req: (field) => {
      const path = ctx.method.requestFields[field];
      return path === undefined ? undefined : nonEmpty(fieldAt(request, path));
    },
    res: (field) => {
      const path = ctx.method.responseFields[field];
      return path === undefined || code !== GrpcStatus.OK ? undefined : nonEmpty(fieldAt(ctx.response(), path));
    },
    phase: (name, detail, image) => ({ phase: name, detail, image, start, end, durationMs: elapsedMs(start, end), code, message, links }),
    containerImage: () => containerImage(ctx.method, request),
  };
}

/** The image as the user wrote it when kubelet sends that, else the one it resolved (the method table says where). */
function containerImage(method: MethodInfo, request: DecodedMessage): string | undefined {
  for (const path of podStartImages.of(method) ?? []) {
    const image = nonEmpty(fieldAt(request, path));
    if (image !== undefined) return image;
  }
  return undefined;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function callerOf(ctx: CallContext): TraceContextRef | undefined {
  const traceparent = ctx.metadata.get('traceparent');
  if (traceparent === undefined) return undefined;
  const tracestate = ctx.metadata.get('tracestate');
  return tracestate === undefined ? { traceparent } : { traceparent, tracestate };
}
