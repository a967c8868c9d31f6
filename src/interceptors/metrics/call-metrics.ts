import type { Registry } from 'prom-client';
import type { Backends } from '../../chain/backends';
import type { FastCounter, FastGauge, FastHistogram } from '../../metrics/fast';
import { ensureCollectedGauge, ensureFastCounter, ensureFastGauge, ensureFastHistogram, type CollectedGauge } from '../../metrics/registry';
import { METRIC } from '../../metrics/names';

/** CRI latencies: sub-millisecond status polls up to minute-long pulls and execs. */
export const DEFAULT_BUCKETS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** The proxy's own time is normally tens of microseconds; these resolve it where it matters. */
export const OVERHEAD_BUCKETS: readonly number[] = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1,
];

export type CallLabels = 'service' | 'method' | 'code' | 'backend';
export type MethodLabels = 'service' | 'method';

/** The per-call metrics, all with cells resolved once per label set (see src/metrics/fast.ts). */
export interface CallMetrics {
  readonly calls: FastCounter<CallLabels>;
  readonly duration: FastHistogram<CallLabels>;
  readonly runtime: FastHistogram<'service' | 'method' | 'backend'>;
  readonly overhead: FastHistogram<MethodLabels>;
  readonly inFlight: FastGauge<MethodLabels>;
  readonly streamMessages: FastCounter<MethodLabels>;
}

export function callMetrics(registry: Registry, buckets: readonly number[]): CallMetrics {
  return {
    calls: ensureFastCounter(registry, {
      name: METRIC.callsTotal,
      help: 'CRI calls through the proxy, by method, gRPC status code and backend',
      labelNames: ['service', 'method', 'code', 'backend'] as const,
    }),
    duration: ensureFastHistogram(registry, {
      name: METRIC.callDurationSeconds,
      help: 'Duration of CRI calls as the client sees them through the proxy',
      labelNames: ['service', 'method', 'code', 'backend'] as const,
      buckets,
    }),
    runtime: ensureFastHistogram(registry, {
      name: METRIC.runtimeDurationSeconds,
      help: 'Time CRI calls spent waiting on the runtime (request sent to last byte received)',
      labelNames: ['service', 'method', 'backend'] as const,
      buckets,
    }),
    overhead: ensureFastHistogram(registry, {
      name: METRIC.overheadSeconds,
      help: "The proxy's own time per CRI call: call duration minus time waiting on the runtime",
      labelNames: ['service', 'method'] as const,
      buckets: OVERHEAD_BUCKETS,
    }),
    inFlight: ensureFastGauge(registry, {
      name: METRIC.callsInFlight,
      help: 'CRI calls currently in progress through the proxy',
      labelNames: ['service', 'method'] as const,
    }),
    streamMessages: ensureFastCounter(registry, {
      name: METRIC.streamMessagesTotal,
      help: 'Response messages relayed on server-streaming CRI calls',
      labelNames: ['service', 'method'] as const,
    }),
  };
}

/** Backend health, read from the router's upstreams at scrape time (never on the call path). */
export function backendGauges(registry: Registry, router: Backends): CollectedGauge<'backend'>[] {
  const up = ensureCollectedGauge(
    registry,
    {
      name: METRIC.backendUp,
      help: '1 if the connection to the backend runtime is up, 0 if it failed; absent until first contacted',
      labelNames: ['backend'] as const,
    },
    (gauge) => {
      for (const upstream of router.upstreams) {
        const { up: isUp, lastErrorAt } = upstream.status;
        // A backend never contacted is neither up nor down; a 0 would page for an idle, healthy runtime.
        if (isUp || lastErrorAt !== undefined) gauge.set({ backend: upstream.name }, isUp ? 1 : 0);
      }
    },
  );
  const lastError = ensureCollectedGauge(
    registry,
    {
      name: METRIC.backendLastErrorTimestampSeconds,
      help: 'When the connection to the backend runtime last failed (Unix time); absent if it never did',
      labelNames: ['backend'] as const,
    },
    (gauge) => {
      for (const upstream of router.upstreams) {
        const at = upstream.status.lastErrorAt;
        if (at !== undefined) gauge.set({ backend: upstream.name }, at / 1000);
      }
    },
  );
  return [up, lastError];
}
