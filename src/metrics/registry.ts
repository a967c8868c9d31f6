import { Counter, Gauge, Histogram, type Metric, type Registry } from 'prom-client';
import { FastCounter, FastGauge, FastHistogram } from './fast';

/**
 * Metrics that outlive one interceptor instance. A config reload builds a new interceptor against the same
 * registry, so each metric is reused when the registry already holds one of the same shape (counters keep
 * counting, the in-flight gauge stays consistent across generations) and replaced when the shape changed
 * (new buckets, say) or the name belongs to a metric this module did not create.
 */
const shapes = new WeakMap<Metric, string>();

interface Shape<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
}

function ensure<M extends Metric>(registry: Registry, kind: string, shape: object, build: () => M): M {
  const { name } = shape as Shape<string>;
  const signature = JSON.stringify([kind, shape]);
  const existing = registry.getSingleMetric(name);
  if (existing !== undefined) {
    if (shapes.get(existing) === signature) return existing as M;
    registry.removeSingleMetric(name);
  }
  const metric = build();
  shapes.set(metric, signature);
  return metric;
}

export function ensureCounter<L extends string>(registry: Registry, shape: Shape<L>): Counter<L> {
  return ensure(registry, 'counter', shape, () => new Counter({ ...shape, registers: [registry] }));
}

export function ensureGauge<L extends string>(registry: Registry, shape: Shape<L>): Gauge<L> {
  return ensure(registry, 'gauge', shape, () => new Gauge({ ...shape, registers: [registry] }));
}

const collectors = new WeakMap<Metric, () => void>();

export interface CollectedGauge<L extends string> {
  readonly gauge: Gauge<L>;
  /** Stops this caller's collector from feeding the gauge, unless a newer one has taken over. */
  release(): void;
}

/**
 * A gauge whose values are computed at scrape time. The gauge runs whichever collector was installed last,
 * so a reused gauge reads the newest interceptor's view (its router, after a reload), never a retired one.
 */
export function ensureCollectedGauge<L extends string>(
  registry: Registry,
  shape: Shape<L>,
  collect: (gauge: Gauge<L>) => void,
): CollectedGauge<L> {
  const gauge = ensure(
    registry,
    'collected-gauge',
    shape,
    () =>
      new Gauge<L>({
        ...shape,
        registers: [registry],
        collect() {
          // Series of backends that no longer exist must disappear, so each scrape starts empty.
          this.reset();
          collectors.get(this)?.();
        },
      }),
  );
  const collector = (): void => collect(gauge);
  collectors.set(gauge, collector);
  return {
    gauge,
    release: () => {
      if (collectors.get(gauge) === collector) collectors.delete(gauge);
    },
  };
}

export function ensureHistogram<L extends string>(
  registry: Registry,
  shape: Shape<L> & { readonly buckets: readonly number[] },
): Histogram<L> {
  const buckets = [...shape.buckets];
  return ensure(registry, 'histogram', shape, () => new Histogram({ ...shape, buckets, registers: [registry] }));
}

export function ensureFastCounter<L extends string>(registry: Registry, shape: Shape<L>): FastCounter<L> {
  return ensure(registry, 'fast-counter', shape, () => new FastCounter<L>({ ...shape, registers: [registry] }));
}

export function ensureFastGauge<L extends string>(registry: Registry, shape: Shape<L>): FastGauge<L> {
  return ensure(registry, 'fast-gauge', shape, () => new FastGauge<L>({ ...shape, registers: [registry] }));
}

export function ensureFastHistogram<L extends string>(
  registry: Registry,
  shape: Shape<L> & { readonly buckets: readonly number[] },
): FastHistogram<L> {
  const buckets = [...shape.buckets];
  return ensure(registry, 'fast-histogram', shape, () => new FastHistogram<L>({ ...shape, buckets, registers: [registry] }));
}

const codeNames: readonly string[] = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
];

/** The gRPC name of a status code; codes outside the spec read as UNKNOWN, as gRPC clients treat them. */
export function grpcCodeName(code: number): string {
  return codeNames[code] ?? 'UNKNOWN';
}

export const GRPC_CODE_COUNT = codeNames.length;
