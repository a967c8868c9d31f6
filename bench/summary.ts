/** Measured phases → the bench's result: medians over rounds, ratios against direct and the splice, targets. */
import type { BurstSummary } from './burst-summary';
import { PROXY_VARIANTS } from './proxy-config';
import { DIRECT, SPLICE, type RowKind } from './rows';
import { median, round } from './stats';
import type { CallSize } from './workloads';

export type Workload = 'throughput' | 'latency';

/** One measured phase: one runtime, call type, workload, row and round. */
export interface PhaseRecord {
  readonly runtime: string;
  readonly round: number;
  readonly call: string;
  readonly size: CallSize;
  readonly workload: Workload;
  readonly concurrency: number;
  readonly row: string;
  readonly kind: RowKind;
  readonly calls: number;
  readonly errors: number;
  readonly wallMs: number;
  readonly callsPerSec: number;
  readonly p50Us: number | undefined;
  readonly p99Us: number | undefined;
  /** The relay's CPU and read/write syscalls per call; undefined for direct. */
  readonly relayCpuUsPerCall: number | undefined;
  readonly relayReadsPerCall: number | undefined;
  readonly relayWritesPerCall: number | undefined;
  readonly runtimeCpuUsPerCall: number;
  readonly clientCpuUsPerCall: number;
  /** CPU of client, runtime and relay over wall time: 2.0 means both cores of this machine were busy. */
  readonly coresBusy: number;
}

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

export interface DirectSummary {
  readonly throughputConcurrency: number;
  readonly callsPerSec: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly runtimeCpuUsPerCall: number;
  readonly clientCpuUsPerCall: number;
  readonly coresBusy: number;
}

/** One relay row for one call type. `vsSplice` fields compare with the splice phase of the same round. */
export interface RowSummary {
  readonly kind: RowKind;
  readonly throughput: { readonly callsPerSec: number; readonly vsDirect: number; readonly vsSplice: number };
  readonly latency: {
    readonly p50Us: number;
    readonly addedP50Us: number;
    readonly addedP50VsSpliceUs: number;
    readonly p50VsDirect: number;
    readonly p99Us: number;
    readonly addedP99Us: number;
  };
  /** The relay's own CPU per call in each workload, and at throughput relative to the splice's. */
  readonly cpuUsPerCall: { readonly throughput: number; readonly latency: number; readonly vsSplice: number };
  /** Read and write syscalls per call: batching at high concurrency shows here. */
  readonly syscallsPerCall: { readonly throughput: number; readonly latency: number };
  /** At throughput, beside direct's: what the runtime and the client spent per call, and how busy the machine was. */
  readonly runtimeCpuUsPerCall: number;
  readonly clientCpuUsPerCall: number;
  readonly coresBusy: number;
}

export interface CallSummary {
  readonly size: CallSize;
  readonly direct: DirectSummary;
  readonly rows: Readonly<Record<string, RowSummary>>;
}

export interface MemorySummary {
  /** From start to its socket accepting a connection. */
  readonly listeningMs: number;
  /** Before any call, once RSS stopped moving (`idleSettled` false: it still moved when the bench gave up). */
  readonly idleRssMb: number;
  readonly idleSettled: boolean;
  /** At the end of the measured rounds. */
  readonly rssMb: number;
  readonly hwmMb: number;
}

export interface StartupCall {
  readonly firstUs: number;
  readonly laterMedianUs: number;
}

/** The first calls after a start against later ones (`later` of each), on a fresh connection. */
export interface StartupSummary {
  readonly calls: Readonly<Record<string, StartupCall>>;
  readonly later: number;
  readonly errors: number;
}

export interface SoakSample {
  readonly calls: number;
  readonly rssMb: number;
  readonly hwmMb: number;
  readonly callsPerSec: number;
  readonly errors: number;
}

export interface RuntimeFacts {
  readonly description: string;
  /** Unframed response message sizes by call type. */
  readonly responseBytes: Readonly<Record<string, number>>;
  readonly memory: Readonly<Record<string, MemorySummary>>;
  readonly startup?: Readonly<Record<string, StartupSummary>>;
  readonly soak?: Readonly<Record<string, readonly SoakSample[]>>;
  /** The pod-start burst by row (a real runtime only). */
  readonly bursts?: Readonly<Record<string, BurstSummary>>;
  readonly skipped: Readonly<Record<string, string>>;
}

export interface RuntimeResult extends RuntimeFacts {
  readonly calls: Readonly<Record<string, CallSummary>>;
}

export interface TargetCheck {
  readonly what: string;
  readonly value: number;
  readonly target: string;
  readonly met: boolean;
}

export interface BenchSettingsRecord {
  readonly phaseSeconds: number;
  readonly rounds: number;
  readonly concurrency: number;
  readonly largeConcurrency: number;
  readonly tracingExporter: string;
  readonly proxyNodeArgs: readonly string[];
  readonly profiling: boolean;
}

export interface BenchResult {
  readonly schema: 2;
  readonly at: string;
  readonly node: string;
  readonly cpus: number;
  readonly settings: BenchSettingsRecord;
  /** By runtime: `fake-runtime`, and `containerd` when it ran. */
  readonly runtimes: Readonly<Record<string, RuntimeResult>>;
  readonly checks: readonly TargetCheck[];
  readonly errors: number;
}

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

function check(what: string, value: number, target: string, ok: (v: number) => boolean): TargetCheck {
  return { what, value, target, met: Number.isFinite(value) && ok(value) };
}

/** The targets a proxy row is held to for one call type (reference rows have none). */
function callChecks(prefix: string, row: string, size: CallSize, concurrency: number, s: RowSummary): TargetCheck[] {
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

function memoryChecks(runtime: string, facts: RuntimeFacts, proxyRows: ReadonlySet<string>): TargetCheck[] {
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

function burstChecks(runtime: string, bursts: Readonly<Record<string, BurstSummary>>, proxyRows: ReadonlySet<string>): TargetCheck[] {
  const max = TARGETS.podStartVsDirectMax;
  return Object.entries(bursts)
    .filter(([row]) => proxyRows.has(row))
    .flatMap(([row, b]) => [
      check(`${runtime} ${row}: pod-start burst wall time ×direct`, b.wallVsDirect, `≤ ${max}`, (v) => v <= max),
      check(`${runtime} ${row}: pod-start burst p99 ×direct`, b.p99VsDirect, `≤ ${max}`, (v) => v <= max),
    ]);
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
