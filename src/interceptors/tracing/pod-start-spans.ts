/** A pod start as a trace of its own: a root span, one span per phase, each linking back to the calls' spans. */
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  isSpanContextValid,
  trace,
  type Attributes,
  type Context,
  type Link,
  type Span,
  type TextMapGetter,
  type Tracer,
} from '@opentelemetry/api';
import type { W3CTraceContextPropagator } from '@opentelemetry/core';
import { GrpcStatus } from '../../errors';
import type { PodStartAnnotations } from '../../chain/pod-start-records';
import { podStartPhaseNames, type PodStart, type PodStartPhase, type TraceContextRef } from '../../observability/pod-start-tracker';
import {
  ATTR_CRI_CONTAINER_NAME,
  ATTR_CRI_IMAGE,
  ATTR_CRI_POD_NAME,
  ATTR_CRI_POD_NAMESPACE,
  ATTR_CRI_POD_UID,
  ATTR_CRI_RUNTIME_HANDLER,
  ATTR_CRI_SANDBOX_ID,
  ATTR_POD_START_CONTAINERS,
  ATTR_POD_START_PHASE,
  ATTR_POD_START_PHASES_DROPPED,
  ATTR_POD_START_PHASE_MS,
  ATTR_POD_START_STATUS,
  ATTR_POD_START_TOTAL_MS,
  ATTR_RPC_GRPC_STATUS_CODE,
  podStartPhaseTotalAttribute,
} from './attributes';

const refGetter: TextMapGetter<TraceContextRef> = {
  keys: () => ['traceparent', 'tracestate'],
  get: (carrier, key) => (key === 'traceparent' ? carrier.traceparent : key === 'tracestate' ? carrier.tracestate : undefined),
};

/**
 * One trace per pod start, rooted in a span of its own: kubelet's calls for one pod belong to different traces
 * (or none), so none of them could hold the whole start. Each phase links back to the calls' spans instead.
 * Returns the trace's id when it is sampled; throws what the tracer throws (the caller counts it).
 */
export function recordPodStart(tracer: Tracer, propagator: W3CTraceContextPropagator, pod: PodStart): PodStartAnnotations | undefined {
  const attributes: Attributes = {
    [ATTR_CRI_POD_UID]: pod.uid,
    [ATTR_POD_START_TOTAL_MS]: pod.totalMs,
    [ATTR_POD_START_STATUS]: pod.status,
    [ATTR_POD_START_CONTAINERS]: pod.containers,
  };
  if (pod.name !== undefined) attributes[ATTR_CRI_POD_NAME] = pod.name;
  if (pod.namespace !== undefined) attributes[ATTR_CRI_POD_NAMESPACE] = pod.namespace;
  if (pod.sandboxId !== undefined) attributes[ATTR_CRI_SANDBOX_ID] = pod.sandboxId;
  if (pod.runtimeHandler !== undefined) attributes[ATTR_CRI_RUNTIME_HANDLER] = pod.runtimeHandler;
  if (pod.phasesDropped > 0) attributes[ATTR_POD_START_PHASES_DROPPED] = pod.phasesDropped;
  for (const phase of podStartPhaseNames) attributes[podStartPhaseTotalAttribute[phase]] = pod.phaseTotals[phase];
  const root = tracer.startSpan(
    'pod start',
    {
      root: true,
      kind: SpanKind.INTERNAL,
      startTime: pod.start.epochMs,
      attributes,
      links: linksOf(propagator, pod.phases[0]?.links ?? []),
    },
    ROOT_CONTEXT,
  );
  if (pod.status === 'failed') {
    root.setStatus({ code: SpanStatusCode.ERROR, message: `pod start failed with gRPC status ${pod.code}` });
  }
  const parent = trace.setSpan(ROOT_CONTEXT, root);
  for (const phase of pod.phases) recordPhase(tracer, propagator, phase, parent);
  root.end(pod.end.epochMs);
  return isSampled(root) ? { traceId: root.spanContext().traceId } : undefined;
}

function recordPhase(tracer: Tracer, propagator: W3CTraceContextPropagator, phase: PodStartPhase, parent: Context): void {
  const attributes: Attributes = {
    [ATTR_POD_START_PHASE]: phase.phase,
    [ATTR_POD_START_PHASE_MS]: phase.durationMs,
    [ATTR_RPC_GRPC_STATUS_CODE]: phase.code,
  };
  if (phase.detail !== undefined) attributes[phase.phase === 'pull' ? ATTR_CRI_IMAGE : ATTR_CRI_CONTAINER_NAME] = phase.detail;
  const name = phase.detail === undefined ? `pod start: ${phase.phase}` : `pod start: ${phase.phase} ${phase.detail}`;
  const span = tracer.startSpan(
    name,
    { kind: SpanKind.INTERNAL, startTime: phase.start.epochMs, attributes, links: linksOf(propagator, phase.links) },
    parent,
  );
  if (phase.code !== GrpcStatus.OK) span.setStatus({ code: SpanStatusCode.ERROR, message: `gRPC status ${phase.code}` });
  span.end(phase.end.epochMs);
}

function linksOf(propagator: W3CTraceContextPropagator, refs: readonly TraceContextRef[]): Link[] {
  const links: Link[] = [];
  for (const ref of refs) {
    const context = trace.getSpanContext(propagator.extract(ROOT_CONTEXT, ref, refGetter));
    if (context && isSpanContextValid(context)) links.push({ context });
  }
  return links;
}

export function isSampled(span: Span): boolean {
  try {
    return (span.spanContext().traceFlags & TraceFlags.SAMPLED) !== 0;
  } catch {
    return false;
  }
}

/** The W3C traceparent of `span`, for a pod start phase to link to it. */
export function traceparentOf(span: Span): TraceContextRef {
  const { traceId, spanId, traceFlags } = span.spanContext();
  return { traceparent: `00-${traceId}-${spanId}-${traceFlags.toString(16).padStart(2, '0')}` };
}
