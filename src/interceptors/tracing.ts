import { z } from 'zod';
import { registerInterceptorType, type InterceptorDeps } from '../config/interceptor-types';
import { errorMessage } from '../errors';
import type { CallTracer } from '../observability/call-tracer';
import type { CallContext, Interceptor, Next } from '../proxy/types';

// Timeouts end up in setTimeout, which misbehaves past int32.
const MAX_INT32 = 2 ** 31 - 1;

export const EXPORTER_TYPES = ['none', 'otlp-http', 'otlp-grpc'] as const;

const exporterSchema = z.strictObject({
  /** `none` still creates spans and propagates trace context to the runtime, but sends them nowhere. */
  type: z.enum(EXPORTER_TYPES).default('none'),
  /** Collector URL; the exporter's default when absent (http://localhost:4318/v1/traces, http://localhost:4317). */
  endpoint: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }).optional(),
  /** Sent with every export (e.g. an API key); never logged. */
  headers: z.record(z.string().min(1), z.string()).optional(),
  /** Upper bound for one export, so a dead collector holds nothing up for long. */
  timeoutMs: z.int().min(1).max(MAX_INT32).default(10_000),
  /** On stop or reload, how long spans still queued may take to go out; then they are dropped. */
  shutdownTimeoutMs: z.int().min(0).max(MAX_INT32).default(1000),
});

export const tracingConfigSchema = z.strictObject({
  exporter: exporterSchema.prefault({}),
  /** Share of new traces kept; calls that arrive with a trace context follow the caller's decision. */
  samplingRatio: z.number().min(0).max(1).default(1),
  serviceName: z.string().min(1).default('cri-proxy'),
  podStart: z
    .strictObject({
      enabled: z.boolean().default(true),
      settleMs: z.int().min(0).max(600_000).default(3000),
      maxPods: z.int().min(1).max(1_000_000).default(1000),
      ttlMs: z.int().min(1000).max(MAX_INT32).default(10 * 60 * 1000),
    })
    .prefault({}),
});
export type TracingConfig = z.output<typeof tracingConfigSchema>;

/**
 * A SERVER span per CRI call (continuing kubelet's trace context and passing ours on to the runtime), and a
 * `pod start` trace per pod. The OpenTelemetry SDK and exporters are large (tens of MB, a fifth of a second to
 * load), so they are loaded only when a tracing entry is configured: right away, in the background. Calls that
 * arrive before that wait for it; if it fails, calls go on untraced.
 */
export function createTracingInterceptor(config: TracingConfig, deps: InterceptorDeps): Interceptor {
  let tracer: CallTracer | undefined;
  const ready: Promise<CallTracer | undefined> = import('../observability/call-tracer')
    .then((m) => m.CallTracer.create(config, deps))
    .then(
      (t) => (tracer = t),
      (err: unknown) => {
        deps.log.error('tracing is disabled: the tracer could not be set up', { error: errorMessage(err) });
        return undefined;
      },
    );
  return {
    name: deps.name,
    intercept(ctx: CallContext, next: Next): Promise<void> {
      if (tracer) return tracer.intercept(ctx, next);
      return ready.then((active) => (active ? active.intercept(ctx, next) : next()));
    },
    async close(): Promise<void> {
      await (await ready)?.close();
    },
  };
}

registerInterceptorType('tracing', { schema: tracingConfigSchema, create: createTracingInterceptor });
