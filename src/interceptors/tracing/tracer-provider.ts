import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  type ReadableSpan,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-base';
import { errorMessage } from '../../errors';
import type { Logger } from '../../log';
import type { TracingConfig } from './config';
import { ATTR_SERVICE_NAME } from './attributes';

type ExporterConfig = TracingConfig['exporter'];

// The queue bounds memory when the collector is slow or gone: spans beyond it are dropped, calls never wait.
const MAX_QUEUE_SIZE = 2048;
const MAX_EXPORT_BATCH_SIZE = 512;
const SCHEDULED_DELAY_MS = 2000;
const FAILURE_LOG_INTERVAL_MS = 60_000;

/** The proxy's own provider: never registered globally, so it cannot collide with anything else in the process. */
export async function buildTracerProvider(config: TracingConfig, log: Logger): Promise<BasicTracerProvider> {
  const exporter = await createExporter(config.exporter);
  return new BasicTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: config.serviceName }),
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(config.samplingRatio) }),
    spanProcessors: exporter
      ? [
          new BatchSpanProcessor(new ReportingExporter(exporter, config.exporter.type, log), {
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
      return new OTLPTraceExporter({ ...url, timeoutMillis: config.timeoutMs, ...(config.headers ? { headers: { ...config.headers } } : {}) });
    }
    case 'otlp-grpc': {
      const [{ OTLPTraceExporter }, { Metadata }] = await Promise.all([
        import('@opentelemetry/exporter-trace-otlp-grpc'),
        import('@grpc/grpc-js'),
      ]);
      const metadata = new Metadata();
      for (const [key, value] of Object.entries(config.headers ?? {})) metadata.set(key, value);
      return new OTLPTraceExporter({ ...url, timeoutMillis: config.timeoutMs, metadata });
    }
  }
}

/** Passes spans on and logs failed exports, at most once a minute: a dead collector must not flood the log. */
class ReportingExporter implements SpanExporter {
  private failures = 0;
  private lastLogged = 0;

  constructor(
    private readonly inner: SpanExporter,
    private readonly type: string,
    private readonly log: Logger,
  ) {}

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
    this.failures++;
    const now = Date.now();
    if (now - this.lastLogged < FAILURE_LOG_INTERVAL_MS) return;
    this.lastLogged = now;
    // The error names the endpoint at most; headers (credentials) never reach the log.
    this.log.warn('trace export failed; spans dropped', {
      exporter: this.type,
      spans,
      failuresSinceLastReport: this.failures,
      ...(error ? { error: errorMessage(error) } : {}),
    });
    this.failures = 0;
  }
}
