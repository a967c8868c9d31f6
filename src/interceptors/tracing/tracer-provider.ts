import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOnSampler,
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  type ReadableSpan,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-base';
import { errorMessage } from '../../errors';
import type { Counter } from 'prom-client';
import type { InterceptorDeps } from '../../chain/interceptor-types';
import { RareLog } from '../../log';
import { ensureCounter } from '../../metrics/registry';
import type { TracingConfig } from './config';
import { ATTR_SERVICE_NAME } from './attributes';
import { METRIC } from '../../metrics/names';
import { OtlpExporter } from './otlp-exporter';
import { otlpSettings } from './otlp-settings';

type ExporterConfig = TracingConfig['exporter'];

// The queue bounds memory when the collector is slow or gone: spans beyond it are dropped, calls never wait.
const MAX_QUEUE_SIZE = 2048;
const MAX_EXPORT_BATCH_SIZE = 512;
const SCHEDULED_DELAY_MS = 2000;

/** The proxy's own provider and how it ends. */
export interface OwnedTracerProvider {
  readonly provider: BasicTracerProvider;
  /**
   * Exports the spans still queued, for at most `flushMs`, then ends whatever export is still going (an export
   * that started before the stop is not waited for): nothing of the exporter is left running. `expired` when the
   * queued spans did not go out in time.
   */
  shutdown(flushMs: number): Promise<'flushed' | 'expired'>;
}

/** The proxy's own provider: never registered globally, so it cannot collide with anything else in the process. */
export async function buildTracerProvider(config: TracingConfig, deps: InterceptorDeps): Promise<OwnedTracerProvider> {
  const exporter = await createExporter(config.exporter);
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: config.serviceName }),
    // Every new trace kept: no need to work a ratio out of each trace id.
    sampler: new ParentBasedSampler({
      root: config.samplingRatio >= 1 ? new AlwaysOnSampler() : new TraceIdRatioBasedSampler(config.samplingRatio),
    }),
    spanProcessors: exporter
      ? [
          new BatchSpanProcessor(new ReportingExporter(exporter, config.exporter.type, deps), {
            maxQueueSize: MAX_QUEUE_SIZE,
            maxExportBatchSize: MAX_EXPORT_BATCH_SIZE,
            scheduledDelayMillis: SCHEDULED_DELAY_MS,
            exportTimeoutMillis: config.exporter.timeoutMs,
          }),
        ]
      : [],
  });
  return {
    provider,
    shutdown: async (flushMs) => {
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<{ readonly expired: true }>((resolve) => {
        timer = setTimeout(() => resolve({ expired: true }), flushMs);
      });
      // Settles either way, so that a flush that fails after the bound is not an unhandled rejection.
      const flushed = provider.shutdown().then(
        () => ({ error: undefined }),
        (error: unknown) => ({ error }),
      );
      try {
        const outcome = await Promise.race([flushed, expired]);
        if ('expired' in outcome) return 'expired';
        if (outcome.error !== undefined) throw outcome.error instanceof Error ? outcome.error : new Error(errorMessage(outcome.error));
        return 'flushed';
      } finally {
        clearTimeout(timer);
        await exporter?.shutdown();
      }
    },
  };
}

/** Only the configured exporter's transport is loaded. */
async function createExporter(config: ExporterConfig): Promise<OtlpExporter | undefined> {
  if (config.type === 'none') return undefined;
  const protocol = config.type === 'otlp-grpc' ? 'grpc' : 'http';
  const settings = otlpSettings(protocol, config);
  const [{ JsonTraceSerializer, ProtobufTraceSerializer }, transport] = await Promise.all([
    import('@opentelemetry/otlp-transformer'),
    protocol === 'grpc'
      ? import('./otlp-grpc').then(({ OtlpGrpcTransport }) => new OtlpGrpcTransport(settings))
      : import('./otlp-http').then(({ OtlpHttpTransport }) => new OtlpHttpTransport(settings)),
  ]);
  // OTLP/HTTP sends JSON, OTLP/gRPC protobuf.
  const serializer = protocol === 'grpc' ? ProtobufTraceSerializer : JsonTraceSerializer;
  return new OtlpExporter(transport, (spans) => serializer.serializeRequest(spans), config.timeoutMs);
}

/**
 * Passes spans on; failed exports are counted (`cri_proxy_trace_export_failures_total`, and the spans they held in
 * `cri_proxy_trace_spans_dropped_total`) and logged at most once a minute: a dead collector must not flood the log.
 */
class ReportingExporter implements SpanExporter {
  private readonly failures: Counter<'interceptor' | 'exporter'>;
  private readonly dropped: Counter<'interceptor' | 'exporter'>;
  private readonly labels: { readonly interceptor: string; readonly exporter: string };
  private readonly rare: RareLog;

  constructor(
    private readonly inner: SpanExporter,
    exporterType: string,
    deps: InterceptorDeps,
  ) {
    const labelNames = ['interceptor', 'exporter'] as const;
    this.failures = ensureCounter(deps.registry, {
      name: METRIC.traceExportFailuresTotal,
      help: 'Span batches the trace exporter failed to deliver to the collector',
      labelNames,
    });
    this.dropped = ensureCounter(deps.registry, {
      name: METRIC.traceSpansDroppedTotal,
      help: 'Spans lost because their export failed',
      labelNames,
    });
    this.labels = { interceptor: deps.name, exporter: exporterType };
    this.failures.inc(this.labels, 0);
    this.dropped.inc(this.labels, 0);
    this.rare = new RareLog(deps.log, 'warn', 'trace export failed; spans dropped');
  }

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    this.inner.export(spans, (result) => {
      if (result.code !== ExportResultCode.SUCCESS) this.failed(spans.length, result.error);
      resultCallback(result);
    });
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }

  private failed(spans: number, error: Error | undefined): void {
    try {
      this.failures.inc(this.labels);
      this.dropped.inc(this.labels, spans);
      // The error names the endpoint at most; headers (credentials) never reach the log.
      this.rare.report({ exporter: this.labels.exporter, spans, ...(error ? { error: errorMessage(error) } : {}) });
    } catch {
      // Reporting must not break the exporter.
    }
  }
}
