/** Turns measured phases into the bench's summary: medians over rounds, ratios against direct, targets. */
import { median, round } from './stats';

export type Workload = 'throughput' | 'latency';

/** One measured phase: one call type, one workload, one target, one round. */
export interface PhaseRecord {
  readonly round: number;
  readonly call: string;
  readonly workload: Workload;
  readonly concurrency: number;
  readonly target: string;
  readonly calls: number;
  readonly errors: number;
  readonly wallMs: number;
  readonly callsPerSec: number;
  readonly p50Us: number | undefined;
  readonly p99Us: number | undefined;
  /** Undefined for the direct target. */
  readonly proxyCpuUsPerCall: number | undefined;
  /** The proxy's read and write syscalls per call; undefined for the direct target. */
  readonly proxyReadsPerCall: number | undefined;
  readonly proxyWritesPerCall: number | undefined;
  readonly runtimeCpuUsPerCall: number;
  readonly clientCpuUsPerCall: number;
  /** CPU of client, runtime and proxy over wall time: 2.0 means both cores of this machine were busy. */
  readonly coresBusy: number;
}

export const DIRECT = 'direct';

export const TARGETS = {
  throughputRatioMin: 0.9,
  addedP50UsMax: 60,
  cpuUsPerCallMax: 50,
  rssMbMax: 64,
} as const;

export interface VariantSummary {
  readonly throughput: { readonly directCallsPerSec: number; readonly callsPerSec: number; readonly ratio: number };
  readonly latency: {
    readonly directP50Us: number;
    readonly p50Us: number;
    readonly addedP50Us: number;
    readonly directP99Us: number;
    readonly p99Us: number;
    readonly addedP99Us: number;
  };
  readonly proxyCpuUsPerCall: { readonly throughput: number; readonly latency: number };
  /** Syscalls the proxy makes per call, by workload: batching at high concurrency shows here. */
  readonly proxySyscallsPerCall: {
    readonly throughput: { readonly reads: number; readonly writes: number };
    readonly latency: { readonly reads: number; readonly writes: number };
  };
  /** Context for the ratios: what the other processes spent per call, and how busy the machine was. */
  readonly runtimeCpuUsPerCall: { readonly direct: number; readonly proxied: number };
  readonly clientCpuUsPerCall: { readonly direct: number; readonly proxied: number };
  readonly coresBusy: { readonly direct: number; readonly proxied: number };
}

export interface MemorySummary {
  readonly rssMb: number;
  readonly hwmMb: number;
}

export interface TargetCheck {
  readonly what: string;
  readonly value: number;
  readonly target: string;
  readonly met: boolean;
}

export interface BenchResult {
  readonly schema: 1;
  readonly at: string;
  readonly node: string;
  readonly cpus: number;
  readonly settings: {
    readonly phaseSeconds: number;
    readonly rounds: number;
    readonly concurrency: number;
    readonly proxyNodeArgs: readonly string[];
    readonly profiling: boolean;
  };
  readonly responseBytes: Readonly<Record<string, number>>;
  /** call type → proxy variant → summary. */
  readonly calls: Readonly<Record<string, Readonly<Record<string, VariantSummary>>>>;
  readonly memory: Readonly<Record<string, MemorySummary>>;
  readonly skipped: Readonly<Record<string, string>>;
  readonly checks: readonly TargetCheck[];
  readonly errors: number;
}

export interface RunFacts {
  readonly settings: BenchResult['settings'];
  readonly responseBytes: Readonly<Record<string, number>>;
  readonly memory: Readonly<Record<string, MemorySummary>>;
  readonly skipped: Readonly<Record<string, string>>;
  readonly cpus: number;
}

/** Pairs each phase of `variant` with the direct phase of the same round, so drift cancels in the ratio. */
function paired(phases: readonly PhaseRecord[], call: string, workload: Workload, variant: string): [PhaseRecord, PhaseRecord][] {
  const pick = (target: string): PhaseRecord[] => phases.filter((p) => p.call === call && p.workload === workload && p.target === target);
  const direct = pick(DIRECT);
  return pick(variant).flatMap((v): [PhaseRecord, PhaseRecord][] => {
    const d = direct.find((p) => p.round === v.round);
    return d ? [[d, v]] : [];
  });
}

function summarize(phases: readonly PhaseRecord[], call: string, variant: string): VariantSummary {
  const tp = paired(phases, call, 'throughput', variant);
  const lat = paired(phases, call, 'latency', variant);
  const m = (pairs: [PhaseRecord, PhaseRecord][], f: (d: PhaseRecord, v: PhaseRecord) => number | undefined): number =>
    round(median(pairs.map(([d, v]) => f(d, v) ?? Number.NaN)), 2);
  const num = (x: number | undefined): number => x ?? Number.NaN;
  return {
    throughput: {
      directCallsPerSec: m(tp, (d) => d.callsPerSec),
      callsPerSec: m(tp, (_, v) => v.callsPerSec),
      ratio: round(median(tp.map(([d, v]) => v.callsPerSec / d.callsPerSec)), 3),
    },
    latency: {
      directP50Us: m(lat, (d) => d.p50Us),
      p50Us: m(lat, (_, v) => v.p50Us),
      addedP50Us: m(lat, (d, v) => num(v.p50Us) - num(d.p50Us)),
      directP99Us: m(lat, (d) => d.p99Us),
      p99Us: m(lat, (_, v) => v.p99Us),
      addedP99Us: m(lat, (d, v) => num(v.p99Us) - num(d.p99Us)),
    },
    proxyCpuUsPerCall: { throughput: m(tp, (_, v) => v.proxyCpuUsPerCall), latency: m(lat, (_, v) => v.proxyCpuUsPerCall) },
    proxySyscallsPerCall: {
      throughput: { reads: m(tp, (_, v) => v.proxyReadsPerCall), writes: m(tp, (_, v) => v.proxyWritesPerCall) },
      latency: { reads: m(lat, (_, v) => v.proxyReadsPerCall), writes: m(lat, (_, v) => v.proxyWritesPerCall) },
    },
    runtimeCpuUsPerCall: { direct: m(tp, (d) => d.runtimeCpuUsPerCall), proxied: m(tp, (_, v) => v.runtimeCpuUsPerCall) },
    clientCpuUsPerCall: { direct: m(tp, (d) => d.clientCpuUsPerCall), proxied: m(tp, (_, v) => v.clientCpuUsPerCall) },
    coresBusy: { direct: m(tp, (d) => d.coresBusy), proxied: m(tp, (_, v) => v.coresBusy) },
  };
}

export function buildResult(phases: readonly PhaseRecord[], facts: RunFacts): BenchResult {
  const callNames = [...new Set(phases.map((p) => p.call))];
  const variants = [...new Set(phases.map((p) => p.target))].filter((t) => t !== DIRECT);
  const calls: Record<string, Record<string, VariantSummary>> = {};
  const checks: TargetCheck[] = [];
  for (const call of callNames) {
    const byVariant: Record<string, VariantSummary> = {};
    for (const variant of variants) {
      const s = summarize(phases, call, variant);
      byVariant[variant] = s;
      const c = facts.settings.concurrency;
      checks.push(
        check(`${call} ${variant}: throughput ratio @${c}`, s.throughput.ratio, `≥ ${TARGETS.throughputRatioMin}`, (v) => v >= TARGETS.throughputRatioMin),
        check(`${call} ${variant}: added p50 µs @1`, s.latency.addedP50Us, `≤ ${TARGETS.addedP50UsMax}`, (v) => v <= TARGETS.addedP50UsMax),
        check(`${call} ${variant}: proxy CPU µs/call @${c}`, s.proxyCpuUsPerCall.throughput, `≤ ${TARGETS.cpuUsPerCallMax}`, (v) => v <= TARGETS.cpuUsPerCallMax),
      );
    }
    calls[call] = byVariant;
  }
  for (const [variant, mem] of Object.entries(facts.memory)) {
    checks.push(check(`${variant}: peak RSS MB (VmHWM)`, mem.hwmMb, `≤ ${TARGETS.rssMbMax}`, (v) => v <= TARGETS.rssMbMax));
  }
  return {
    schema: 1,
    at: new Date().toISOString(),
    node: process.version,
    cpus: facts.cpus,
    settings: facts.settings,
    responseBytes: facts.responseBytes,
    calls,
    memory: facts.memory,
    skipped: facts.skipped,
    checks,
    errors: phases.reduce((sum, p) => sum + p.errors, 0),
  };
}

function check(what: string, value: number, target: string, ok: (v: number) => boolean): TargetCheck {
  return { what, value, target, met: Number.isFinite(value) && ok(value) };
}

/** Left-aligned first column, right-aligned numbers. */
function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows
    .map((row) => row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join('  '))
    .join('\n');
}

const fmt = (v: number, digits = 0): string => (Number.isFinite(v) ? v.toFixed(digits) : 'n/a');
const mark = (met: boolean): string => (met ? 'ok' : 'MISSED');

export function formatReport(r: BenchResult): string {
  const c = r.settings.concurrency;
  const out: string[] = [];
  const sizes = Object.entries(r.responseBytes).map(([k, v]) => `${k} ${v} B`).join(', ');
  out.push(
    `cri-proxy bench: ${r.settings.rounds} rounds of ${r.settings.phaseSeconds} s phases, node ${r.node}, ${r.cpus} cpus; responses: ${sizes}`,
    'medians over rounds; ratios and added latency are per round (each proxied phase against the direct phase beside it)',
  );
  if (r.settings.proxyNodeArgs.length > 0) out.push(`proxy node flags: ${r.settings.proxyNodeArgs.join(' ')}`);
  if (r.settings.profiling) out.push('the proxy ran under --cpu-prof: its numbers include the profiler\'s overhead');
  out.push('');
  const tp: string[][] = [[`throughput @${c} concurrent`, 'direct/s', 'proxied/s', 'ratio', `target ≥${TARGETS.throughputRatioMin}`]];
  const lat: string[][] = [['latency @1 (µs)', 'p50 dir', 'p50 prx', '+p50', 'p99 dir', 'p99 prx', '+p99', `+p50 ≤${TARGETS.addedP50UsMax}`]];
  const cpu: string[][] = [
    [
      'CPU µs per call',
      `proxy @${c}`,
      'proxy @1',
      `target ≤${TARGETS.cpuUsPerCallMax}`,
      'runtime dir/prx',
      'client dir/prx',
      'cores busy dir/prx',
      `proxy syscalls r+w @${c}`,
      'r+w @1',
    ],
  ];
  for (const [call, variants] of Object.entries(r.calls)) {
    for (const [variant, s] of Object.entries(variants)) {
      const label = `${call} via ${variant}`;
      tp.push([label, fmt(s.throughput.directCallsPerSec), fmt(s.throughput.callsPerSec), fmt(s.throughput.ratio, 3), mark(s.throughput.ratio >= TARGETS.throughputRatioMin)]);
      const l = s.latency;
      lat.push([label, fmt(l.directP50Us), fmt(l.p50Us), fmt(l.addedP50Us), fmt(l.directP99Us), fmt(l.p99Us), fmt(l.addedP99Us), mark(l.addedP50Us <= TARGETS.addedP50UsMax)]);
      const p = s.proxyCpuUsPerCall;
      cpu.push([
        label,
        fmt(p.throughput, 1),
        fmt(p.latency, 1),
        mark(p.throughput <= TARGETS.cpuUsPerCallMax),
        `${fmt(s.runtimeCpuUsPerCall.direct)}/${fmt(s.runtimeCpuUsPerCall.proxied)}`,
        `${fmt(s.clientCpuUsPerCall.direct)}/${fmt(s.clientCpuUsPerCall.proxied)}`,
        `${fmt(s.coresBusy.direct, 2)}/${fmt(s.coresBusy.proxied, 2)}`,
        `${fmt(s.proxySyscallsPerCall.throughput.reads, 1)}+${fmt(s.proxySyscallsPerCall.throughput.writes, 1)}`,
        `${fmt(s.proxySyscallsPerCall.latency.reads, 1)}+${fmt(s.proxySyscallsPerCall.latency.writes, 1)}`,
      ]);
    }
  }
  out.push(table(tp), '', table(lat), '', table(cpu), '');
  const mem: string[][] = [['proxy memory at the end', 'VmRSS MB', 'VmHWM MB', `target ≤${TARGETS.rssMbMax}`]];
  for (const [variant, m] of Object.entries(r.memory)) mem.push([variant, fmt(m.rssMb, 1), fmt(m.hwmMb, 1), mark(m.hwmMb <= TARGETS.rssMbMax)]);
  out.push(table(mem), '');
  for (const [variant, why] of Object.entries(r.skipped)) out.push(`${variant}: skipped (${why})`);
  const missed = r.checks.filter((k) => !k.met);
  out.push(
    `failed calls: ${r.errors}${r.errors > 0 ? '  <-- some calls failed or returned the wrong bytes; the numbers are suspect' : ''}`,
    `targets: ${r.checks.length - missed.length}/${r.checks.length} met${missed.length > 0 ? `; missed: ${missed.map((k) => `${k.what} = ${k.value} (${k.target})`).join('; ')}` : ''}`,
  );
  return out.join('\n');
}
