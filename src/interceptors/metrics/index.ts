import { z } from 'zod';
import { defineInterceptorType, type InterceptorDeps } from '../../chain/interceptor-types';
import { GrpcStatus, ProxyError } from '../../errors';
import { observerFaultReporter, type ObserverFaultReporter } from '../../metrics/observer-faults';
import { DEFAULT_BUCKETS, backendGauges, callMetrics, type CallLabels, type CallMetrics, type MethodLabels } from './call-metrics';
import type { HistogramCell, ValueCell } from '../../metrics/fast';
import { ImagePullMetrics } from './image-pull-metrics';
import { podStartConfigSchema } from '../../observability/pod-start-config';
import { PodStartMetrics } from './pod-start-metrics';
import { GRPC_CODE_COUNT, grpcCodeName, type CollectedGauge } from '../../metrics/registry';
import { methodTable } from '../../chain/method-table';
import type { CallContext, Interceptor, MethodInfo, Next } from '../../chain/types';
import { EVERY_BACKEND, type Backends } from '../../chain/backends';
import { imageRoles, type ImageRole } from './image-roles';

export const metricsConfigSchema = z.strictObject({
  buckets: z
    .array(z.number().positive())
    .min(1)
    .refine((b) => b.every((v, i) => i === 0 || v > (b[i - 1] as number)), 'buckets must be strictly increasing')
    .default([...DEFAULT_BUCKETS]),
  podStart: podStartConfigSchema,
});
export type MetricsConfig = z.output<typeof metricsConfigSchema>;

/** Label value for calls whose path is not a CRI method: clients choose paths, so they must not become labels. */
const UNKNOWN = 'unknown';
/** Label value for calls that never reached a configured backend (denied, or routed to no such backend). */
const NO_BACKEND = 'none';

/** Cells of one (method, backend): resolved once, then indexed by status code on every call. */
interface BackendSeries {
  readonly label: string;
  readonly runtime: HistogramCell<'service' | 'method' | 'backend'>;
  readonly calls: (ValueCell<CallLabels> | undefined)[];
  readonly durations: (HistogramCell<CallLabels> | undefined)[];
}

/** Everything a call of one method touches, resolved once per method so a call builds no label objects. */
interface MethodSeries {
  readonly service: string;
  readonly method: string;
  readonly role: ImageRole | undefined;
  readonly inFlight: ValueCell<MethodLabels>;
  readonly overhead: HistogramCell<MethodLabels>;
  readonly streamMessages: ValueCell<MethodLabels> | undefined;
  readonly backends: Map<string, BackendSeries>;
}

class MetricsInterceptor implements Interceptor {
  private readonly byPath = new Map<string, MethodSeries>();
  private readonly unknown: MethodSeries;
  private readonly backendGauges: readonly CollectedGauge<'backend'>[];

  constructor(
    readonly name: string,
    private readonly metrics: CallMetrics,
    private readonly router: Backends,
    private readonly imagePulls: ImagePullMetrics,
    private readonly podStarts: PodStartMetrics | undefined,
    backendGauges: readonly CollectedGauge<'backend'>[],
    /** Observational: a failure here never reaches the call; it is counted and logged rarely. */
    private readonly fault: ObserverFaultReporter,
  ) {
    for (const method of methodTable) this.byPath.set(method.path, this.seriesOf(method.service, method.name, method));
    this.unknown = this.seriesOf(UNKNOWN, UNKNOWN, undefined);
    this.backendGauges = backendGauges;
  }

  async intercept(ctx: CallContext, next: Next): Promise<void> {
    const series = this.begin(ctx);
    try {
      await next();
    } catch (err) {
      this.end(ctx, series, err instanceof ProxyError ? err.grpcStatus : GrpcStatus.INTERNAL);
      throw err;
    }
    this.end(ctx, series, ctx.outcome?.code ?? GrpcStatus.INTERNAL);
  }

  close(): Promise<void> {
    for (const gauge of this.backendGauges) gauge.release();
    this.podStarts?.close();
    return Promise.resolve();
  }

  private begin(ctx: CallContext): MethodSeries | undefined {
    try {
      const series = (ctx.method.known ? this.byPath.get(ctx.method.path) : undefined) ?? this.unknown;
      const counter = series.streamMessages;
      // Counted per message so long-lived streams show progress; the messages themselves are never decoded.
      if (counter !== undefined) ctx.onResponseMessage(() => counter.inc());
      // Last, so a failure above cannot leave the gauge raised for a call that end() will not see.
      series.inFlight.inc();
      return series;
    } catch (err) {
      this.fault(err);
      return undefined;
    }
  }

  private end(ctx: CallContext, series: MethodSeries | undefined, code: number): void {
    if (series === undefined) return;
    try {
      series.inFlight.dec();
      const totalNanos = process.hrtime.bigint() - ctx.startedAt;
      const total = Number(totalNanos) / 1e9;
      const backend = this.backendSeries(series, ctx.backend);
      let calls = backend.calls[code];
      let duration = backend.durations[code];
      if (calls === undefined || duration === undefined) {
        const labels = [series.service, series.method, grpcCodeName(code), backend.label];
        calls = this.metrics.calls.cell(...labels);
        duration = this.metrics.duration.cell(...labels);
        // Codes outside the spec all read UNKNOWN; only the spec's codes get a slot.
        if (code >= 0 && code < GRPC_CODE_COUNT) {
          backend.calls[code] = calls;
          backend.durations[code] = duration;
        }
      }
      calls.inc();
      duration.observe(total);
      const upstreamNanos = ctx.upstreamNanos;
      if (upstreamNanos > 0n) backend.runtime.observe(Number(upstreamNanos) / 1e9);
      series.overhead.observe(Math.max(0, Number(totalNanos - upstreamNanos) / 1e9));
      if (series.role === 'pull') this.imagePulls.onPull(ctx, code, total);
      else if (series.role === 'status' && code === GrpcStatus.OK && this.imagePulls.waiting) {
        this.imagePulls.onImageStatus(ctx);
      }
    } catch (err) {
      this.fault(err);
    }
  }

  private backendSeries(series: MethodSeries, backend: string | undefined): BackendSeries {
    const label = this.backendLabel(backend);
    let found = series.backends.get(label);
    if (found === undefined) {
      found = {
        label,
        runtime: this.metrics.runtime.cell(series.service, series.method, label),
        calls: new Array<undefined>(GRPC_CODE_COUNT),
        durations: new Array<undefined>(GRPC_CODE_COUNT),
      };
      // Bounded: labels are configured backend names, "*" (every backend) or "none".
      series.backends.set(label, found);
    }
    return found;
  }

  private backendLabel(backend: string | undefined): string {
    if (backend === EVERY_BACKEND) return backend;
    return backend !== undefined && this.router.get(backend) !== undefined ? backend : NO_BACKEND;
  }

  private seriesOf(service: string, method: string, info: MethodInfo | undefined): MethodSeries {
    return {
      service,
      method,
      role: info === undefined ? undefined : imageRoles.of(info),
      inFlight: this.metrics.inFlight.cell(service, method),
      overhead: this.metrics.overhead.cell(service, method),
      streamMessages: info?.kind === 'server-stream' ? this.metrics.streamMessages.cell(service, method) : undefined,
      backends: new Map(),
    };
  }
}

export function createMetricsInterceptor(config: MetricsConfig, deps: InterceptorDeps): Interceptor {
  const metrics = callMetrics(deps.registry, config.buckets);
  const imagePulls = new ImagePullMetrics(deps.registry);
  const fault = observerFaultReporter(deps.registry, deps.name, deps.log, 'metrics interceptor failed to record a call');
  const feed = deps.podStarts;
  const podStarts = config.podStart.enabled && feed !== undefined ? new PodStartMetrics(feed, deps.registry, fault) : undefined;
  const gauges = backendGauges(deps.registry, deps.router);
  return new MetricsInterceptor(deps.name, metrics, deps.router, imagePulls, podStarts, gauges, fault);
}

export const metricsInterceptorType = defineInterceptorType({
  name: 'metrics',
  schema: metricsConfigSchema,
  observesEveryCall: 'the calls it ends would not be counted',
  create: createMetricsInterceptor,
});
