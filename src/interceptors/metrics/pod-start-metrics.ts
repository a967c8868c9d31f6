import type { Histogram, Registry } from 'prom-client';
import { ensureHistogram } from '../../metrics/registry';
import type { ObserverFaultReporter } from '../../metrics/observer-faults';
import type { PodStartSubscriptions } from '../../chain/pod-start-records';
import { podStartPhaseNames, type PodStart, type PodStartPhaseName } from '../../observability/pod-start-tracker';
import { METRIC } from '../../metrics/names';

const POD_START_BUCKETS = [0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600];
const PHASE_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600];

/**
 * Runtime handlers come from RuntimeClass objects, a short list in practice; but the value arrives in a
 * request, so only this many distinct ones become labels and the rest read "other".
 */
const MAX_HANDLERS = 32;
/** kubelet sends an empty handler for the node's default runtime. */
const DEFAULT_HANDLER = 'default';
const OTHER_HANDLER = 'other';

/**
 * Pod start histograms fed by the proxy's pod start feed: one observation per pod that started (failed starts
 * are not durations of a start), and per phase kind the pod went through, the summed time of that kind.
 */
export class PodStartMetrics {
  private readonly total: Histogram<'runtime_handler'>;
  private readonly phases: Histogram<'phase' | 'runtime_handler'>;
  private readonly handlers = new Map<string, HandlerSeries>();
  private readonly unsubscribe: () => void;

  constructor(feed: PodStartSubscriptions, registry: Registry, fault: ObserverFaultReporter) {
    this.total = ensureHistogram(registry, {
      name: METRIC.podStartDurationSeconds,
      help: 'Pod start as seen in CRI calls: RunPodSandbox arrival to the answer of its last StartContainer',
      labelNames: ['runtime_handler'] as const,
      buckets: POD_START_BUCKETS,
    });
    this.phases = ensureHistogram(registry, {
      name: METRIC.podStartPhaseDurationSeconds,
      help: 'Time a pod start spent per phase (sandbox, pull, create, start), summed over its calls of that phase',
      labelNames: ['phase', 'runtime_handler'] as const,
      buckets: PHASE_BUCKETS,
    });
    this.unsubscribe = feed.subscribe((podStart) => {
      try {
        this.record(podStart);
      } catch (err) {
        fault(err);
      }
      return undefined;
    });
  }

  close(): void {
    this.unsubscribe();
  }

  private record(podStart: PodStart): void {
    if (podStart.status !== 'ok') return;
    const series = this.handlerSeries(podStart.runtimeHandler);
    series.total.observe(podStart.totalMs / 1000);
    const seen = new Set<PodStartPhaseName>();
    for (const phase of podStart.phases) seen.add(phase.phase);
    for (const name of podStartPhaseNames) {
      // Only phases the pod went through: a pod whose image was present has no pull, not a zero-second one.
      if (seen.has(name)) series.phases[name].observe(podStart.phaseTotals[name] / 1000);
    }
  }

  private handlerSeries(handler: string | undefined): HandlerSeries {
    let label = handler === undefined || handler === '' ? DEFAULT_HANDLER : handler;
    let series = this.handlers.get(label);
    if (series !== undefined) return series;
    if (this.handlers.size >= MAX_HANDLERS) {
      label = OTHER_HANDLER;
      series = this.handlers.get(label);
      if (series !== undefined) return series;
    }
    series = {
      total: this.total.labels(label),
      phases: {
        sandbox: this.phases.labels('sandbox', label),
        pull: this.phases.labels('pull', label),
        create: this.phases.labels('create', label),
        start: this.phases.labels('start', label),
      },
    };
    this.handlers.set(label, series);
    return series;
  }
}

interface HandlerSeries {
  readonly total: Histogram.Internal<'runtime_handler'>;
  readonly phases: Readonly<Record<PodStartPhaseName, Histogram.Internal<'phase' | 'runtime_handler'>>>;
}
