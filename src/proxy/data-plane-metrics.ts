import type { Registry } from 'prom-client';
import { ensureCounter, ensureGauge } from '../observability/metrics-registry';
import type { LimitName } from './client-connection';
import { ConnectionError, errorCodeName, type StreamError } from './http2/frames';

/** The data plane's degraded modes and limits, as counters (tests and operators watch these, not logs). */
export interface DataPlaneMetrics {
  readonly limit: (limit: LimitName) => void;
  readonly protocolError: (side: 'client' | 'runtime', error: ConnectionError | StreamError) => void;
  readonly observerFault: () => void;
  readonly connections: (open: number) => void;
}

export function dataPlaneMetrics(registry: Registry): DataPlaneMetrics {
  const limits = ensureCounter(registry, {
    name: 'cri_proxy_limit_exceeded_total',
    help: 'Connection limits that triggered, by limit (the offending stream or connection was closed)',
    labelNames: ['limit'],
  });
  const protocol = ensureCounter(registry, {
    name: 'cri_proxy_protocol_errors_total',
    help: 'HTTP/2 protocol errors, by side (client or runtime), scope (stream or connection) and error code',
    labelNames: ['side', 'scope', 'code'],
  });
  const observers = ensureCounter(registry, {
    name: 'cri_proxy_observer_errors_total',
    help: 'Faults of interceptors observing response messages (the stream went on)',
    labelNames: [],
  });
  const connections = ensureGauge(registry, { name: 'cri_proxy_client_connections', help: 'Client connections open', labelNames: [] });
  return {
    limit: (limit) => limits.inc({ limit }),
    protocolError: (side, error) =>
      protocol.inc({ side, scope: error instanceof ConnectionError ? 'connection' : 'stream', code: errorCodeName(error.code) }),
    observerFault: () => observers.inc(),
    connections: (open) => connections.set(open),
  };
}
