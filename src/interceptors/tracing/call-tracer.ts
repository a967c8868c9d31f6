import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  isSpanContextValid,
  trace,
  type Attributes,
  type Link,
  type Span,
  type TextMapGetter,
  type TextMapSetter,
  type Context,
  type Tracer,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import type { InterceptorDeps } from '../../chain/interceptor-types';
import { GrpcStatus, ProxyError, errorMessage } from '../../errors';
import type { TracingConfig } from './config';
import type { Logger } from '../../log';
import { methodTable } from '../../chain/method-table';
import type { Metadata, OutgoingMetadata } from '../../chain/metadata';
import type { CallContext, CriField, MethodInfo, Next } from '../../chain/types';
import {
  ATTR_CRI_BACKEND,
  ATTR_CRI_CONTAINER_NAME,
  ATTR_CRI_FROM_PROXY,
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
  ATTR_RPC_METHOD,
  ATTR_RPC_SERVICE,
  ATTR_RPC_SYSTEM,
  RPC_SYSTEM_GRPC,
  criFieldAttributes,
  podStartPhaseTotalAttribute,
} from './attributes';
import { callSpanKey, type CallSpan } from '../../observability/call-span';
import { instantAt } from '../../observability/clock';
import { observerFaultReporter, type ObserverFaultReporter } from '../../metrics/observer-faults';
import type { PodStartAnnotations } from '../../chain/pod-start-records';
import { PodStartFeed } from '../../observability/pod-start-feed';
import {
  PodStartTracker,
  podStartPhaseNames,
  type PodStart,
  type PodStartPhase,
  type TraceContextRef,
} from '../../observability/pod-start-tracker';
import { buildTracerProvider, type OwnedTracerProvider } from './tracer-provider';
import { PollingSampling } from './polling';
import { fieldAt } from '../../messages/field-at';

const TRACER_NAME = 'cri-proxy';

/** What a method's span needs, worked out once per method rather than on every call. */
interface MethodPlan {
  readonly spanName: string;
  readonly attributes: Attributes;
  /** Request fields to record; empty for polling methods, whose requests are never decoded for tracing. */
  readonly requestFields: readonly (readonly [attribute: string, path: string])[];
  /** Response fields not already given by the request. */
  readonly responseFields: readonly (readonly [attribute: string, path: string])[];
  readonly podStart: boolean;
  /** Called by kubelet in a loop: sampled on its own (see polling.ts). */
  readonly polling: boolean;
}

const headerGetter: TextMapGetter<Metadata> = {
  keys: (carrier) => carrier.keys(),
  get: (carrier, key) => carrier.get(key),
};
const headerSetter: TextMapSetter<OutgoingMetadata> = {
  set: (carrier, key, value) => carrier.set(key, value),
};
const refGetter: TextMapGetter<TraceContextRef> = {
  keys: () => ['traceparent', 'tracestate'],
  get: (carrier, key) => (key === 'traceparent' ? carrier.traceparent : key === 'tracestate' ? carrier.tracestate : undefined),
};

/** The tracing interceptor's implementation, loaded on demand (see index.ts). */
export class CallTracer {
  private readonly propagator = new W3CTraceContextPropagator();
  private readonly plans: ReadonlyMap<string, MethodPlan>;
  /** Stops the pod start traces; undefined when there are none. */
  private readonly unsubscribe: (() => void) | undefined;
  /** Tracing faults never fail a call: they are counted, and logged rarely. */
  private readonly fault: ObserverFaultReporter;
  private readonly shutdownTimeoutMs: number;
  private readonly polling: PollingSampling;

  static async create(config: TracingConfig, deps: InterceptorDeps): Promise<CallTracer> {
    if (deps.tracerProvider) return new CallTracer(config, deps.tracerProvider.getTracer(TRACER_NAME), undefined, deps);
    const owned = await buildTracerProvider(config, deps);
    return new CallTracer(config, owned.provider.getTracer(TRACER_NAME), owned, deps);
  }

  private readonly log: Logger;

  private constructor(
    config: TracingConfig,
    private readonly tracer: Tracer,
    private readonly owned: OwnedTracerProvider | undefined,
    deps: InterceptorDeps,
  ) {
    this.log = deps.log;
    this.fault = observerFaultReporter(deps.registry, deps.name, deps.log, 'tracing skipped part of a call');
    this.shutdownTimeoutMs = config.exporter.shutdownTimeoutMs;
    this.polling = new PollingSampling(config.pollingSamplingRatio, config.slowCallMs);
    this.plans = new Map(methodTable.map((m) => [m.path, planFor(m)]));
    const feed = config.podStart.enabled ? deps.podStarts : undefined;
    this.unsubscribe = feed?.subscribe((p) => this.recordPodStart(p));
  }

  intercept(ctx: CallContext, next: Next): Promise<void> {
    const plan = this.plans.get(ctx.method.path) ?? planFor(ctx.method);
    if (plan.polling && !this.polling.tracedFromStart(ctx.metadata.get('traceparent'))) return this.untraced(ctx, plan, next);
    return this.traced(ctx, plan, next);
  }

  /** A polling call left out at its start: it costs nothing more unless it fails or is slow. */
  private untraced(ctx: CallContext, plan: MethodPlan, next: Next): Promise<void> {
    return next().then(
      () => this.lateSpan(ctx, plan, undefined),
      (err: unknown) => {
        this.lateSpan(ctx, plan, { error: err });
        throw err;
      },
    );
  }

  /** The span of a call left out at its start that failed or was slow, with the times it had. Never throws. */
  private lateSpan(ctx: CallContext, plan: MethodPlan, failure: { error: unknown } | undefined): void {
    const code = failure ? statusOf(failure.error) : (ctx.outcome?.code ?? GrpcStatus.UNKNOWN);
    if (!this.polling.worthLateSpan(code, process.hrtime.bigint() - ctx.startedAt)) return;
    let span: Span;
    try {
      span = this.startCallSpan(ctx, plan, false);
    } catch (err) {
      this.fault(err);
      return;
    }
    this.finish(ctx, plan, span, failure);
  }

  private async traced(ctx: CallContext, plan: MethodPlan, next: Next): Promise<void> {
    let span: Span | undefined;
    try {
      span = this.startCallSpan(ctx, plan);
      if (plan.requestFields.length > 0 && span.isRecording()) {
        const request = await ctx.request();
        for (const [attribute, path] of plan.requestFields) setIfPresent(span, attribute, fieldAt(request, path));
      }
    } catch (err) {
      // An unreadable request is the call's problem, reported by the runtime or the proxy; tracing steps aside.
      this.fault(err);
    }
    try {
      await next();
    } catch (err) {
      this.finish(ctx, plan, span, { error: err });
      throw err;
    }
    this.finish(ctx, plan, span, undefined);
  }

  async close(): Promise<void> {
    this.unsubscribe?.();
    // An injected provider belongs to whoever injected it.
    if (!this.owned) return;
    // Queued spans get a bounded flush: a collector that accepts and never answers must not hold up a stop.
    try {
      if ((await this.owned.shutdown(this.shutdownTimeoutMs)) === 'expired') {
        this.log.warn('spans still queued at shutdown were dropped: the collector did not take them in time', {
          shutdownTimeoutMs: this.shutdownTimeoutMs,
        });
      }
    } catch (err) {
      // The last export failing (collector gone) is no reason to fail a shutdown or reload.
      this.log.warn('spans still queued at shutdown could not be exported', { error: errorMessage(err) });
    }
  }

  private startCallSpan(ctx: CallContext, plan: MethodPlan, propagate = true): Span {
    // Kubelet sends its span as W3C trace context in the gRPC metadata; without it the span starts a new trace.
    const parent =
      ctx.metadata.get('traceparent') === undefined ? ROOT_CONTEXT : this.propagator.extract(ROOT_CONTEXT, ctx.metadata, headerGetter);
    const span = this.tracer.startSpan(
      plan.spanName,
      { kind: SpanKind.SERVER, startTime: instantAt(ctx.startedAt).epochMs, attributes: plan.attributes },
      parent,
    );
    // A span made once the call has ended (a late one) has nothing left to pass on.
    if (!propagate) return span;
    // The runtime's own spans then nest under this one.
    const context = trace.setSpan(ROOT_CONTEXT, span);
    this.propagator.inject(context, ctx.upstreamMetadata, headerSetter);
    // Later interceptors' own work (an image verification) nests under it too.
    if (span.isRecording()) ctx.state.set(callSpanKey, { tracer: this.tracer, context } satisfies CallSpan);
    return span;
  }

  /** Never throws: the call's outcome is already decided. */
  private finish(ctx: CallContext, plan: MethodPlan, span: Span | undefined, failure: { error: unknown } | undefined): void {
    const endedAt = process.hrtime.bigint();
    const code = failure ? statusOf(failure.error) : (ctx.outcome?.code ?? GrpcStatus.UNKNOWN);
    try {
      if (span?.isRecording()) {
        span.setAttribute(ATTR_RPC_GRPC_STATUS_CODE, code);
        if (ctx.backend !== undefined) span.setAttribute(ATTR_CRI_BACKEND, ctx.backend);
        if (ctx.outcome?.fromProxy) span.setAttribute(ATTR_CRI_FROM_PROXY, true);
        if (code !== GrpcStatus.OK) {
          span.setStatus({ code: SpanStatusCode.ERROR, message: failure ? errorMessage(failure.error) : (ctx.outcome?.message ?? '') });
        } else if (plan.responseFields.length > 0) {
          const response = ctx.response();
          for (const [attribute, path] of plan.responseFields) setIfPresent(span, attribute, fieldAt(response, path));
        }
      }
      span?.end(instantAt(endedAt).epochMs);
    } catch (err) {
      this.fault(err);
    }
    try {
      // The pod start phase links to the proxy's own span of the call: it reaches the runtime's spans too (and
      // works without kubelet's).
      if (plan.podStart && this.unsubscribe !== undefined && span && isSampled(span)) PodStartFeed.link(ctx, traceparentOf(span));
    } catch (err) {
      this.fault(err);
    }
  }

  /**
   * One trace per pod start, rooted in a span of its own: kubelet's calls for one pod belong to different traces
   * (or none), so none of them could hold the whole start. Each phase links back to the calls' spans instead.
   */
  private recordPodStart(pod: PodStart): PodStartAnnotations | undefined {
    try {
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
      return isSampled(root) ? { traceId: root.spanContext().traceId } : undefined;
    } catch (err) {
      this.fault(err);
      return undefined;
    }
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

function planFor(method: MethodInfo): MethodPlan {
  const attributes: Attributes = { [ATTR_RPC_SYSTEM]: RPC_SYSTEM_GRPC, [ATTR_RPC_SERVICE]: method.service, [ATTR_RPC_METHOD]: method.name };
  const decoded = method.known && !method.polling;
  const fields = (paths: MethodInfo['requestFields'], skip: MethodInfo['requestFields']): [string, string][] =>
    decoded
      ? Object.entries(paths).flatMap(([field, path]) =>
          path === undefined || skip[field as CriField] !== undefined ? [] : [[criFieldAttributes[field as CriField], path]],
        )
      : [];
  return {
    spanName: `${method.service}/${method.name}`,
    attributes,
    requestFields: fields(method.requestFields, {}),
    responseFields: method.kind === 'unary' ? fields(method.responseFields, method.requestFields) : [],
    podStart: PodStartTracker.tracks(method),
    polling: method.polling,
  };
}

function setIfPresent(span: Span, attribute: string, value: string | undefined): void {
  if (value !== undefined && value !== '') span.setAttribute(attribute, value);
}

function statusOf(error: unknown): number {
  // Anything but a ProxyError becomes INTERNAL in the chain (see chain.ts/call.ts).
  return error instanceof ProxyError ? error.grpcStatus : GrpcStatus.INTERNAL;
}

function isSampled(span: Span): boolean {
  try {
    return (span.spanContext().traceFlags & TraceFlags.SAMPLED) !== 0;
  } catch {
    return false;
  }
}

function traceparentOf(span: Span): TraceContextRef {
  const { traceId, spanId, traceFlags } = span.spanContext();
  return { traceparent: `00-${traceId}-${spanId}-${traceFlags.toString(16).padStart(2, '0')}` };
}
