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

type ExporterConfig = TracingConfig['exporter'];

// The queue bounds memory when the collector is slow or gone: spans beyond it are dropped, calls never wait.
const MAX_QUEUE_SIZE = 2048;
const MAX_EXPORT_BATCH_SIZE = 512;
const SCHEDULED_DELAY_MS = 2000;
// The batch processor gives up waiting on an export after timeoutMs, but the exporter goes on retrying it (five
// attempts, backoff included): without a limit a dead collector holds dozens of batches at once. With one, a
// batch that arrives meanwhile fails at once and is counted as dropped.
const EXPORTS_IN_FLIGHT = 1;

/** The proxy's own provider: never registered globally, so it cannot collide with anything else in the process. */
export async function buildTracerProvider(config: TracingConfig, deps: InterceptorDeps): Promise<BasicTracerProvider> {
  const exporter = await createExporter(config.exporter);
  return new BasicTracerProvider({
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
}

/** Only the configured exporter's module is loaded; each pulls in a sizeable dependency tree. */
async function createExporter(config: ExporterConfig): Promise<SpanExporter | undefined> {
  const url = config.endpoint === undefined ? {} : { url: config.endpoint };
  switch (config.type) {
    case 'none':
      return undefined;
    case 'otlp-http': {
      const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
      return new OTLPTraceExporter({
        ...url,
        timeoutMillis: config.timeoutMs,
        concurrencyLimit: EXPORTS_IN_FLIGHT,
        ...(config.headers ? { headers: { ...config.headers } } : {}),
      });
    }
    case 'otlp-grpc': {
      const [{ OTLPTraceExporter }, { Metadata }] = await Promise.all([
        import('@opentelemetry/exporter-trace-otlp-grpc'),
        import('@grpc/grpc-js'),
      ]);
      const metadata = new Metadata();
      for (const [key, value] of Object.entries(config.headers ?? {})) metadata.set(key, value);
      return new OTLPTraceExporter({ ...url, timeoutMillis: config.timeoutMs, concurrencyLimit: EXPORTS_IN_FLIGHT, metadata });
    }
  }
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
