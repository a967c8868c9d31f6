import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  isSpanContextValid,
  trace,
  type Attributes,
  type Context,
  type Link,
  type TextMapGetter,
  type TextMapPropagator,
  type Tracer,
} from '@opentelemetry/api';
import { GrpcStatus } from '../../errors';
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

/** The `pod start` traces: a span per pod start, a child span per phase, each linked to the calls' own spans. */
export class PodStartSpans {
  constructor(
    private readonly tracer: Tracer,
    private readonly propagator: TextMapPropagator,
  ) {}

  /**
   * One trace per pod start, rooted in a span of its own: kubelet's calls for one pod belong to different traces
   * (or none), so none of them could hold the whole start. Each phase links back to the calls' spans instead.
   */
  record(pod: PodStart): void {
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
    const root = this.tracer.startSpan(
      'pod start',
      { root: true, kind: SpanKind.INTERNAL, startTime: pod.start.epochMs, attributes, links: this.links(pod.phases[0]?.links ?? []) },
      ROOT_CONTEXT,
    );
    if (pod.status === 'failed') {
      root.setStatus({ code: SpanStatusCode.ERROR, message: `pod start failed with gRPC status ${pod.code}` });
    }
    const parent = trace.setSpan(ROOT_CONTEXT, root);
    for (const phase of pod.phases) this.recordPhase(phase, parent);
    root.end(pod.end.epochMs);
  }

  private recordPhase(phase: PodStartPhase, parent: Context): void {
    const attributes: Attributes = {
      [ATTR_POD_START_PHASE]: phase.phase,
      [ATTR_POD_START_PHASE_MS]: phase.durationMs,
      [ATTR_RPC_GRPC_STATUS_CODE]: phase.code,
    };
    if (phase.detail !== undefined) attributes[phase.phase === 'pull' ? ATTR_CRI_IMAGE : ATTR_CRI_CONTAINER_NAME] = phase.detail;
    const name = phase.detail === undefined ? `pod start: ${phase.phase}` : `pod start: ${phase.phase} ${phase.detail}`;
    const span = this.tracer.startSpan(
      name,
      { kind: SpanKind.INTERNAL, startTime: phase.start.epochMs, attributes, links: this.links(phase.links) },
      parent,
    );
    if (phase.code !== GrpcStatus.OK) span.setStatus({ code: SpanStatusCode.ERROR, message: `gRPC status ${phase.code}` });
    span.end(phase.end.epochMs);
  }

  private links(refs: readonly TraceContextRef[]): Link[] {
    const links: Link[] = [];
    for (const ref of refs) {
      const context = trace.getSpanContext(this.propagator.extract(ROOT_CONTEXT, ref, refGetter));
      if (context && isSpanContextValid(context)) links.push({ context });
    }
    return links;
  }
}
