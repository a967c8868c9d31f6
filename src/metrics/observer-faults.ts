import type { Registry } from 'prom-client';
import { errorMessage } from '../errors';
import { RareLog, type Logger } from '../log';
import { ensureCounter } from './registry';
import { METRIC } from './names';

/** Called with whatever an observer threw; never throws itself. */
export type ObserverFaultReporter = (err: unknown) => void;

/**
 * Observers (tracing, metrics) must never change a call's outcome, so their faults are swallowed: counted in
 * `cri_proxy_observer_faults_total{interceptor}` and logged rarely, so a broken setup shows in numbers, not in a
 * flood of log lines.
 */
export function observerFaultReporter(registry: Registry, interceptor: string, log: Logger, what: string): ObserverFaultReporter {
  const faults = ensureCounter(registry, {
    name: METRIC.observerFaultsTotal,
    help: "Faults while observing calls (tracing, metrics); they never change a call's outcome",
    labelNames: ['interceptor'] as const,
  });
  const labels = { interceptor };
  faults.inc(labels, 0);
  const rare = new RareLog(log, 'warn', what);
  return (err) => {
    try {
      faults.inc(labels);
      rare.report({ error: errorMessage(err) });
    } catch {
      // Reporting a fault must not become one.
    }
  };
}
