/** The bench's result as text tables: one section per runtime, the targets beside the numbers. */
import type { BenchResult, CallSummary, RowSummary, RuntimeResult } from './result';
import { TARGETS, variantOf } from './targets';

/** Left-aligned first column, right-aligned numbers. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

const fmt = (v: number | undefined, digits = 0): string => (v !== undefined && Number.isFinite(v) ? v.toFixed(digits) : 'n/a');
const mark = (met: boolean): string => (met ? 'ok' : 'MISSED');
/** The target and whether it is met, for proxy rows only: reference rows are there for comparison. */
const target = (s: RowSummary, text: string, met: boolean): string => (s.kind === 'proxy' ? `${text} ${mark(met)}` : '');

function bytes(n: number): string {
  if (n >= 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${n} B`;
}

type Rows = [string, CallSummary, string, RowSummary][];

function rowsOf(r: RuntimeResult): Rows {
  return Object.entries(r.calls).flatMap(([call, c]) =>
    Object.entries(c.rows).map(([row, s]): [string, CallSummary, string, RowSummary] => [call, c, row, s]),
  );
}

function throughputTable(r: RuntimeResult): string {
  const out: string[][] = [['throughput', 'calls at once', 'calls/s', '×direct', '×splice', 'target']];
  for (const [call, c] of Object.entries(r.calls)) {
    out.push([`${call} direct`, fmt(c.direct.throughputConcurrency), fmt(c.direct.callsPerSec), '', '', '']);
    for (const [row, s] of Object.entries(c.rows)) {
      const t = s.throughput;
      const goal = c.size === 'small' ? target(s, `≥${TARGETS.throughputVsDirectMin}`, t.vsDirect >= TARGETS.throughputVsDirectMin) : '';
      out.push([`${call} ${row}`, fmt(c.direct.throughputConcurrency), fmt(t.callsPerSec), fmt(t.vsDirect, 3), fmt(t.vsSplice, 3), goal]);
    }
  }
  return table(out);
}

function latencyTable(r: RuntimeResult): string {
  const out: string[][] = [['latency at 1 call (µs)', 'p50', '+p50', '+p50 vs splice', 'p50 ×direct', 'p99', '+p99', 'target']];
  for (const [call, c] of Object.entries(r.calls)) {
    out.push([`${call} direct`, fmt(c.direct.p50Us), '', '', '', fmt(c.direct.p99Us), '', '']);
    for (const [row, s] of Object.entries(c.rows)) {
      const l = s.latency;
      const added = TARGETS.addedP50VsSpliceUsMax[variantOf(row)];
      const goal =
        c.size === 'small'
          ? target(s, `+p50 vs splice ≤${added}`, l.addedP50VsSpliceUs <= added)
          : target(s, `×direct ≤${TARGETS.largeP50VsDirectMax}`, l.p50VsDirect <= TARGETS.largeP50VsDirectMax);
      out.push([
        `${call} ${row}`,
        fmt(l.p50Us),
        fmt(l.addedP50Us),
        fmt(l.addedP50VsSpliceUs),
        fmt(l.p50VsDirect, 3),
        fmt(l.p99Us),
        fmt(l.addedP99Us),
        goal,
      ]);
    }
  }
  return table(out);
}

function cpuTable(r: RuntimeResult): string {
  const out: string[][] = [
    [
      'CPU per call (µs)',
      'relay (tp)',
      'relay @1',
      'relay ×splice',
      'target',
      'runtime',
      'client',
      'cores busy',
      'syscalls (tp)',
      'syscalls @1',
    ],
  ];
  for (const [call, c] of Object.entries(r.calls)) {
    const d = c.direct;
    out.push([`${call} direct`, '', '', '', '', fmt(d.runtimeCpuUsPerCall), fmt(d.clientCpuUsPerCall), fmt(d.coresBusy, 2), '', '']);
  }
  for (const [call, c, row, s] of rowsOf(r)) {
    const p = s.cpuUsPerCall;
    const max = TARGETS.cpuVsSpliceMax[variantOf(row)];
    const goal = c.size === 'small' ? target(s, `×splice ≤${max}`, p.vsSplice <= max) : '';
    out.push([
      `${call} ${row}`,
      fmt(p.throughput, 1),
      fmt(p.latency, 1),
      fmt(p.vsSplice, 2),
      goal,
      fmt(s.runtimeCpuUsPerCall),
      fmt(s.clientCpuUsPerCall),
      fmt(s.coresBusy, 2),
      fmt(s.syscallsPerCall.throughput, 1),
      fmt(s.syscallsPerCall.latency, 1),
    ]);
  }
  return table(out);
}

function memoryTable(r: RuntimeResult, proxyRows: ReadonlySet<string>): string {
  const idle = TARGETS.idleRssMbMax;
  const peak = TARGETS.peakRssMbMax;
  const out: string[][] = [['memory (MB)', 'listening after ms', 'idle RSS', 'end RSS', 'peak (VmHWM)', `idle ≤${idle}`, `peak ≤${peak}`]];
  for (const [row, m] of Object.entries(r.memory)) {
    const proxy = proxyRows.has(row);
    out.push([
      row,
      fmt(m.listeningMs),
      `${fmt(m.idleRssMb, 1)}${m.idleSettled ? '' : ' (still moving)'}`,
      fmt(m.rssMb, 1),
      fmt(m.hwmMb, 1),
      proxy ? mark(m.idleRssMb <= idle) : '',
      proxy ? mark(m.hwmMb <= peak) : '',
    ]);
  }
  return table(out);
}

function startupTable(r: RuntimeResult): string {
  const entries = Object.entries(r.startup ?? {});
  const first = entries[0]?.[1];
  if (first === undefined) return '';
  const calls = Object.keys(first.calls);
  const out: string[][] = [['first calls after start (µs)', ...calls.flatMap((c) => [`first ${c}`, `later`, '×'])]];
  for (const [row, s] of entries) {
    out.push([
      `${row}${s.errors > 0 ? ` (${s.errors} failed)` : ''}`,
      ...calls.flatMap((c) => {
        const x = s.calls[c];
        return x === undefined ? ['n/a', 'n/a', 'n/a'] : [fmt(x.firstUs), fmt(x.laterMedianUs), fmt(x.firstUs / x.laterMedianUs, 1)];
      }),
    ]);
  }
  return `${table(out)}\n(later: the median of the next ${first.later} of each, on the same connection)`;
}

function soakTable(r: RuntimeResult): string {
  const entries = Object.entries(r.soak ?? {});
  if (entries.length === 0) return '';
  const out: string[][] = [['memory over calls', 'calls', 'VmRSS MB', 'VmHWM MB', 'calls/s', 'failed']];
  for (const [row, samples] of entries) {
    for (const x of samples) out.push([row, String(x.calls), fmt(x.rssMb, 1), fmt(x.hwmMb, 1), fmt(x.callsPerSec), String(x.errors)]);
  }
  return table(out);
}

function burstTable(r: RuntimeResult, proxyRows: ReadonlySet<string>): string {
  const entries = Object.entries(r.bursts ?? {});
  const first = entries[0]?.[1];
  if (first === undefined) return '';
  const max = TARGETS.podStartVsDirectMax;
  const out: string[][] = [[`pod-start burst (ms)`, 'wall', '×direct', 'p50', 'p99', 'p99 ×direct', 'removal', 'failed', `target ≤${max}`]];
  for (const [row, b] of entries) {
    const direct = row === 'direct';
    out.push([
      row,
      fmt(b.wallMs),
      direct ? '' : fmt(b.wallVsDirect, 3),
      fmt(b.p50Ms),
      fmt(b.p99Ms),
      direct ? '' : fmt(b.p99VsDirect, 3),
      fmt(b.removeMs),
      String(b.failed),
      proxyRows.has(row) ? mark(b.wallVsDirect <= max && b.p99VsDirect <= max) : '',
    ]);
  }
  const failed = entries.find(([, b]) => b.firstError !== undefined);
  return [
    table(out),
    `(${first.pods} pods at once, kubelet's calls: RunPodSandbox, PullImage of a present image, CreateContainer, StartContainer; medians of ${first.rounds} rounds)`,
    ...(failed === undefined ? [] : [`first failure (${failed[0]}): ${failed[1].firstError ?? ''}`]),
  ].join('\n');
}

function runtimeSection(name: string, r: RuntimeResult): string[] {
  const sizes = Object.entries(r.responseBytes)
    .map(([k, v]) => `${k} ${bytes(v)}`)
    .join(', ');
  const proxyRows = new Set(
    rowsOf(r)
      .filter(([, , , s]) => s.kind === 'proxy')
      .map(([, , row]) => row),
  );
  const out = [
    `== ${name}: ${r.description}`,
    `responses: ${sizes}`,
    '',
    throughputTable(r),
    '',
    latencyTable(r),
    '',
    cpuTable(r),
    '',
    memoryTable(r, proxyRows),
    '',
  ];
  for (const extra of [startupTable(r), burstTable(r, proxyRows), soakTable(r)]) if (extra !== '') out.push(extra, '');
  for (const [what, why] of Object.entries(r.skipped)) out.push(`${what}: skipped (${why})`);
  return out;
}

export function formatReport(r: BenchResult): string {
  const s = r.settings;
  const out: string[] = [
    `cri-proxy bench: ${s.rounds} round(s) of ${s.phaseSeconds} s phases, node ${r.node}, ${r.cpus} cpus; throughput (tp) at ${s.concurrency} calls at once (large calls: ${s.largeConcurrency}); tracing exporter: ${s.tracingExporter}`,
    'medians over rounds; every ratio and difference pairs a row with the direct (or splice) phase of the same round',
  ];
  if (s.proxyNodeArgs.length > 0) out.push(`proxy node flags: ${s.proxyNodeArgs.join(' ')}`);
  if (s.profiling) out.push("the proxies ran under --cpu-prof: their numbers include the profiler's overhead");
  out.push('');
  for (const [name, runtime] of Object.entries(r.runtimes)) out.push(...runtimeSection(name, runtime));
  const missed = r.checks.filter((k) => !k.met);
  out.push(
    `failed calls: ${r.errors}${r.errors > 0 ? '  <-- some calls failed or returned the wrong bytes; the numbers are suspect' : ''}`,
    `targets: ${r.checks.length - missed.length}/${r.checks.length} met${missed.length > 0 ? '; missed:' : ''}`,
    ...missed.map((k) => `  ${k.what} = ${k.value} (${k.target})`),
  );
  return out.join('\n');
}
