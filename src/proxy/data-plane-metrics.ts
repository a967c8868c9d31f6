import type { Registry } from 'prom-client';
import type { Logger } from '../log';
import { observerFaultReporter } from '../metrics/observer-faults';
import { ensureCounter, ensureGauge } from '../metrics/registry';
import type { LimitName } from './client-lifecycle';
import { ConnectionError, errorCodeName, type StreamError } from './http2/frames';
import { METRIC } from '../metrics/names';

/** The data plane's degraded modes and limits, as counters (tests and operators watch these, not logs). */
export interface DataPlaneMetrics {
  readonly limit: (limit: LimitName) => void;
  readonly protocolError: (side: 'client' | 'runtime', error: ConnectionError | StreamError) => void;
  readonly observerFault: (error: unknown) => void;
  readonly connections: (open: number) => void;
}

export function dataPlaneMetrics(registry: Registry, log: Logger): DataPlaneMetrics {
  const limits = ensureCounter(registry, {
    name: METRIC.limitExceededTotal,
    help: 'Connection limits that triggered, by limit (the offending stream or connection was closed)',
    labelNames: ['limit'],
  });
  const protocol = ensureCounter(registry, {
    name: METRIC.protocolErrorsTotal,
    help: 'HTTP/2 protocol errors, by side (client or runtime), scope (stream or connection) and error code',
    labelNames: ['side', 'scope', 'code'],
  });
  const connections = ensureGauge(registry, { name: METRIC.clientConnections, help: 'Client connections open', labelNames: [] });
  return {
    limit: (limit) => limits.inc({ limit }),
    protocolError: (side, error) =>
      protocol.inc({ side, scope: error instanceof ConnectionError ? 'connection' : 'stream', code: errorCodeName(error.code) }),
    // Observers of stream messages belong to no one interceptor the data plane could name.
    observerFault: observerFaultReporter(registry, 'stream', log, 'an observer of stream messages failed'),
    connections: (open) => connections.set(open),
  };
}
