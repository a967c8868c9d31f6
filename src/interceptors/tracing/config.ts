import { z } from 'zod';
import { podStartConfigSchema } from '../../observability/pod-start-config';
import { MAX_INT32 } from '../../values';

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
  /** Share of polling calls (List*, *Status, *Stats, Version) without the caller's trace context that get a span. */
  pollingSamplingRatio: z.number().min(0).max(1).default(0),
  /** A polling call left out by sampling that fails or takes this long still gets its span. */
  slowCallMs: z.int().min(0).max(MAX_INT32).default(1000),
  serviceName: z.string().min(1).default('cri-proxy'),
  podStart: podStartConfigSchema,
});
export type TracingConfig = z.output<typeof tracingConfigSchema>;
