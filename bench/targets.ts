/** The targets the bench holds proxy rows to, and the checks of one runtime's summaries against them. */
import { PROXY_VARIANTS } from './proxy-config';
import type { RowSummary, RuntimeFacts, TargetCheck } from './result';
import type { BurstSummary } from './burst-summary';
import { round } from './stats';
import type { CallSize } from './workloads';

/** What a proxy row is held to; the CPU and added-latency targets are per variant, looser with the chain. */
export const TARGETS = {
  throughputVsDirectMin: 0.9,
  cpuVsSpliceMax: { proxy: 3, chain: 4 },
  addedP50VsSpliceUsMax: { proxy: 30, chain: 60 },
  largeP50VsDirectMax: 1.1,
  idleRssMbMax: 64,
  peakRssMbMax: 96,
  /** Over the long memory run: what RSS may rise from its first sample to its highest. */
  longRunRiseMbMax: 8,
  podStartVsDirectMax: 1.02,
} as const;

export const variantOf = (row: string): 'proxy' | 'chain' =>
  PROXY_VARIANTS.find((v) => v.name === row)?.chain === true ? 'chain' : 'proxy';
function check(what: string, value: number, target: string, ok: (v: number) => boolean): TargetCheck {
  return { what, value, target, met: Number.isFinite(value) && ok(value) };
}

/** The targets a proxy row is held to for one call type (reference rows have none). */
export function callChecks(prefix: string, row: string, size: CallSize, concurrency: number, s: RowSummary): TargetCheck[] {
  if (size === 'large') {
    return [
      check(
        `${prefix}: p50 latency ×direct @1`,
        s.latency.p50VsDirect,
        `≤ ${TARGETS.largeP50VsDirectMax}`,
        (v) => v <= TARGETS.largeP50VsDirectMax,
      ),
    ];
  }
  const cpuMax = TARGETS.cpuVsSpliceMax[variantOf(row)];
  const addedMax = TARGETS.addedP50VsSpliceUsMax[variantOf(row)];
  return [
    check(
      `${prefix}: throughput ×direct @${concurrency}`,
      s.throughput.vsDirect,
      `≥ ${TARGETS.throughputVsDirectMin}`,
      (v) => v >= TARGETS.throughputVsDirectMin,
    ),
    check(`${prefix}: added p50 over the splice's µs @1`, s.latency.addedP50VsSpliceUs, `≤ ${addedMax}`, (v) => v <= addedMax),
    check(`${prefix}: CPU per call ×splice @${concurrency}`, s.cpuUsPerCall.vsSplice, `≤ ${cpuMax}`, (v) => v <= cpuMax),
  ];
}

export function memoryChecks(runtime: string, facts: RuntimeFacts, proxyRows: ReadonlySet<string>): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const atMost = (max: number) => (v: number) => v <= max;
  for (const [row, m] of Object.entries(facts.memory)) {
    if (!proxyRows.has(row)) continue;
    checks.push(
      check(`${runtime} ${row}: idle RSS MB`, m.idleRssMb, `≤ ${TARGETS.idleRssMbMax}`, atMost(TARGETS.idleRssMbMax)),
      check(`${runtime} ${row}: peak RSS MB (VmHWM)`, m.hwmMb, `≤ ${TARGETS.peakRssMbMax}`, atMost(TARGETS.peakRssMbMax)),
    );
  }
  for (const [row, samples] of Object.entries(facts.soak ?? {})) {
    const last = samples[samples.length - 1];
    const first = samples[0];
    if (last === undefined || first === undefined) continue;
    const max = Math.max(...samples.map((x) => x.rssMb));
    checks.push(
      check(`${runtime} ${row}: max RSS MB over ${last.calls} calls`, max, `≤ ${TARGETS.peakRssMbMax}`, atMost(TARGETS.peakRssMbMax)),
      check(
        `${runtime} ${row}: RSS rise MB over ${last.calls} calls`,
        round(max - first.rssMb, 1),
        `≤ ${TARGETS.longRunRiseMbMax}`,
        atMost(TARGETS.longRunRiseMbMax),
      ),
    );
  }
  return checks;
}

export function burstChecks(
  runtime: string,
  bursts: Readonly<Record<string, BurstSummary>>,
  proxyRows: ReadonlySet<string>,
): TargetCheck[] {
  const max = TARGETS.podStartVsDirectMax;
  return Object.entries(bursts)
    .filter(([row]) => proxyRows.has(row))
    .flatMap(([row, b]) => [
      check(`${runtime} ${row}: pod-start burst wall time ×direct`, b.wallVsDirect, `≤ ${max}`, (v) => v <= max),
      check(`${runtime} ${row}: pod-start burst p99 ×direct`, b.p99VsDirect, `≤ ${max}`, (v) => v <= max),
    ]);
}
