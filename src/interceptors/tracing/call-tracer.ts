import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Span,
  type TextMapGetter,
  type TextMapSetter,
  type Tracer,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import type { InterceptorDeps } from '../../chain/interceptor-types';
import { GrpcStatus, ProxyError, errorMessage } from '../../errors';
import type { TracingConfig } from './config';
import type { Logger } from '../../log';
import { methodTable } from '../../chain/method-table';
import type { Metadata, OutgoingMetadata } from '../../chain/metadata';
import type { CallContext, Next } from '../../chain/types';
import { ATTR_CRI_BACKEND, ATTR_CRI_FROM_PROXY, ATTR_RPC_GRPC_STATUS_CODE } from './attributes';
import { callSpanKey, type CallSpan } from '../../observability/call-span';
import { instantAt } from '../../observability/clock';
import { observerFaultReporter, type ObserverFaultReporter } from '../../metrics/observer-faults';
import type { PodStartAnnotations } from '../../chain/pod-start-records';
import { PodStartFeed } from '../../observability/pod-start-feed';
import type { PodStart } from '../../observability/pod-start-tracker';
import { buildTracerProvider, type OwnedTracerProvider } from './tracer-provider';
import { PollingSampling } from './polling';
import { fieldAt } from '../../messages/field-at';
import { planFor, type MethodPlan } from './method-plan';
import { isSampled, recordPodStart, traceparentOf } from './pod-start-spans';

const TRACER_NAME = 'cri-proxy';

const headerGetter: TextMapGetter<Metadata> = {
  keys: (carrier) => carrier.keys(),
  get: (carrier, key) => carrier.get(key),
};
const headerSetter: TextMapSetter<OutgoingMetadata> = {
  set: (carrier, key, value) => carrier.set(key, value),
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
    this.unsubscribe = feed?.subscribe((p) => this.tracePodStart(p));
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

  /** A finished pod start's own trace (see pod-start-spans.ts); a tracing fault is counted, never thrown. */
  private tracePodStart(pod: PodStart): PodStartAnnotations | undefined {
    try {
      return recordPodStart(this.tracer, this.propagator, pod);
    } catch (err) {
      this.fault(err);
      return undefined;
    }
  }
}

function setIfPresent(span: Span, attribute: string, value: string | undefined): void {
  if (value !== undefined && value !== '') span.setAttribute(attribute, value);
}

function statusOf(error: unknown): number {
  // Anything but a ProxyError becomes INTERNAL in the chain (see chain.ts/call.ts).
  return error instanceof ProxyError ? error.grpcStatus : GrpcStatus.INTERNAL;
}
