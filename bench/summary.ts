/** Measured phases → the bench's result: medians over rounds, ratios against direct and the splice, targets. */
import type { CallSummary, DirectSummary, PhaseRecord, RowSummary, RuntimeFacts, RuntimeResult, TargetCheck, Workload } from './result';
import { DIRECT, SPLICE, type RowKind } from './rows';
import { median, round } from './stats';
import { burstChecks, callChecks, memoryChecks } from './targets';

type Round = ReadonlyMap<string, PhaseRecord>;

/** The phases of one call and workload, by round, each round's phases by row. */
function byRound(phases: readonly PhaseRecord[], call: string, workload: Workload): Round[] {
  const rounds = new Map<number, Map<string, PhaseRecord>>();
  for (const p of phases) {
    if (p.call !== call || p.workload !== workload) continue;
    let rows = rounds.get(p.round);
    if (rows === undefined) rounds.set(p.round, (rows = new Map<string, PhaseRecord>()));
    rows.set(p.row, p);
  }
  return [...rounds.values()];
}

/** Median over rounds of `f` (rounds where it is undefined are left out), rounded. */
function over(rounds: readonly Round[], f: (r: Round) => number | undefined, digits = 2): number {
  return round(median(rounds.map((r) => f(r) ?? Number.NaN)), digits);
}

const ratio = (a: number | undefined, b: number | undefined): number | undefined =>
  a === undefined || b === undefined ? undefined : a / b;
const minus = (a: number | undefined, b: number | undefined): number | undefined =>
  a === undefined || b === undefined ? undefined : a - b;
const syscalls = (p: PhaseRecord | undefined): number | undefined =>
  p?.relayReadsPerCall === undefined || p.relayWritesPerCall === undefined ? undefined : p.relayReadsPerCall + p.relayWritesPerCall;

function summarizeDirect(tp: readonly Round[], lat: readonly Round[]): DirectSummary {
  const d = (r: Round): PhaseRecord | undefined => r.get(DIRECT);
  return {
    throughputConcurrency: tp[0]?.get(DIRECT)?.concurrency ?? Number.NaN,
    callsPerSec: over(tp, (r) => d(r)?.callsPerSec, 1),
    p50Us: over(lat, (r) => d(r)?.p50Us, 1),
    p99Us: over(lat, (r) => d(r)?.p99Us, 1),
    runtimeCpuUsPerCall: over(tp, (r) => d(r)?.runtimeCpuUsPerCall),
    clientCpuUsPerCall: over(tp, (r) => d(r)?.clientCpuUsPerCall),
    coresBusy: over(tp, (r) => d(r)?.coresBusy),
  };
}

function summarizeRow(tp: readonly Round[], lat: readonly Round[], row: string, kind: RowKind): RowSummary {
  const v = (r: Round): PhaseRecord | undefined => r.get(row);
  const d = (r: Round): PhaseRecord | undefined => r.get(DIRECT);
  const s = (r: Round): PhaseRecord | undefined => r.get(SPLICE);
  return {
    kind,
    throughput: {
      callsPerSec: over(tp, (r) => v(r)?.callsPerSec, 1),
      vsDirect: over(tp, (r) => ratio(v(r)?.callsPerSec, d(r)?.callsPerSec), 3),
      vsSplice: over(tp, (r) => ratio(v(r)?.callsPerSec, s(r)?.callsPerSec), 3),
    },
    latency: {
      p50Us: over(lat, (r) => v(r)?.p50Us, 1),
      addedP50Us: over(lat, (r) => minus(v(r)?.p50Us, d(r)?.p50Us), 1),
      addedP50VsSpliceUs: over(lat, (r) => minus(v(r)?.p50Us, s(r)?.p50Us), 1),
      p50VsDirect: over(lat, (r) => ratio(v(r)?.p50Us, d(r)?.p50Us), 3),
      p99Us: over(lat, (r) => v(r)?.p99Us, 1),
      addedP99Us: over(lat, (r) => minus(v(r)?.p99Us, d(r)?.p99Us), 1),
    },
    cpuUsPerCall: {
      throughput: over(tp, (r) => v(r)?.relayCpuUsPerCall, 1),
      latency: over(lat, (r) => v(r)?.relayCpuUsPerCall, 1),
      vsSplice: over(tp, (r) => ratio(v(r)?.relayCpuUsPerCall, s(r)?.relayCpuUsPerCall), 2),
    },
    syscallsPerCall: { throughput: over(tp, (r) => syscalls(v(r)), 1), latency: over(lat, (r) => syscalls(v(r)), 1) },
    runtimeCpuUsPerCall: over(tp, (r) => v(r)?.runtimeCpuUsPerCall, 1),
    clientCpuUsPerCall: over(tp, (r) => v(r)?.clientCpuUsPerCall, 1),
    coresBusy: over(tp, (r) => v(r)?.coresBusy),
  };
}
/** One runtime's summary and the checks of its proxy rows. */
export function summarizeRuntime(
  runtime: string,
  phases: readonly PhaseRecord[],
  facts: RuntimeFacts,
): { result: RuntimeResult; checks: TargetCheck[] } {
  const calls: Record<string, CallSummary> = {};
  const checks: TargetCheck[] = [];
  const proxyRows = new Set(phases.filter((p) => p.kind === 'proxy').map((p) => p.row));
  for (const call of [...new Set(phases.map((p) => p.call))]) {
    const first = phases.find((p) => p.call === call);
    if (first === undefined) continue;
    const tp = byRound(phases, call, 'throughput');
    const lat = byRound(phases, call, 'latency');
    const rows: Record<string, RowSummary> = {};
    for (const p of phases) {
      if (p.call !== call || p.kind === 'direct' || rows[p.row] !== undefined) continue;
      const s = summarizeRow(tp, lat, p.row, p.kind);
      rows[p.row] = s;
      if (p.kind === 'proxy')
        checks.push(...callChecks(`${runtime} ${call} ${p.row}`, p.row, first.size, tp[0]?.get(p.row)?.concurrency ?? Number.NaN, s));
    }
    calls[call] = { size: first.size, direct: summarizeDirect(tp, lat), rows };
  }
  checks.push(...memoryChecks(runtime, facts, proxyRows), ...burstChecks(runtime, facts.bursts ?? {}, proxyRows));
  return { result: { ...facts, calls }, checks };
}
