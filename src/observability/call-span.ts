/**
 * The tracing interceptor leaves the call's span on `ctx.state` under this key, so interceptors later in the chain
 * can record work of their own (an image verification, say) as child spans with the same tracer. Absent when the
 * call is not traced or not sampled. `Symbol.for` keeps the key identical across module copies.
 */
import type { Context, Tracer } from '@opentelemetry/api';

export const callSpanKey = Symbol.for('cri-proxy.tracing.call-span');

export interface CallSpan {
  readonly tracer: Tracer;
  /** A context holding the call's span: the parent of spans started for the call. */
  readonly context: Context;
}

export function callSpanOf(state: ReadonlyMap<unknown, unknown>): CallSpan | undefined {
  const value = state.get(callSpanKey);
  return typeof value === 'object' && value !== null && 'tracer' in value && 'context' in value ? (value as CallSpan) : undefined;
}
