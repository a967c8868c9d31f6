/** The soak's result and its text report: the proxy's memory over time, and the calls made. */
import { table } from './report';

export interface SoakSample {
  /** Since the load started (after the pods were created). */
  readonly seconds: number;
  readonly rssMb: number;
  readonly hwmMb: number;
  /** The proxy's CPU since the previous sample, in % of one core. */
  readonly cpuPct: number;
  /** Calls and failed calls so far. */
  readonly calls: number;
  readonly errors: number;
  readonly pods: number;
}

export interface SoakResult {
  readonly schema: 1;
  readonly at: string;
  readonly node: string;
  readonly cpus: number;
  readonly runtime: { readonly name: string; readonly description: string };
  readonly settings: Readonly<{ seconds: number; pods: number } & Record<string, unknown>>;
  /** VmRSS after start, before any call (once it stopped moving). */
  readonly idleRssMb: number;
  readonly samples: readonly SoakSample[];
  readonly methods: Readonly<Record<string, { readonly calls: number; readonly errors: number; readonly maxMs: number }>>;
  readonly lastErrors: Readonly<Record<string, string>>;
  /** Rounds of a periodic task skipped because the previous one was still running. */
  readonly skippedTicks: Readonly<Record<string, number>>;
  /** What `cri-proxy audit verify` said of the soak's audit log. */
  readonly audit: string;
}

const ROWS = 6;

/** The first sample, the last, and the ones nearest each sixth of the run in between. */
function milestones(samples: readonly SoakSample[]): SoakSample[] {
  const last = samples[samples.length - 1];
  if (last === undefined) return [];
  const picked = new Set<SoakSample>();
  for (let i = 0; i <= ROWS; i++) {
    const want = (last.seconds * i) / ROWS;
    let best = samples[0] as SoakSample;
    for (const s of samples) if (Math.abs(s.seconds - want) < Math.abs(best.seconds - want)) best = s;
    picked.add(best);
  }
  return [...picked];
}

function clock(seconds: number): string {
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  return `${m}:${String(s).padStart(2, '0')}`;
}

export function formatSoakReport(r: SoakResult): string {
  const first = r.samples[0];
  const last = r.samples[r.samples.length - 1];
  const rows: string[][] = [['time', 'VmRSS MB', 'VmHWM MB', 'CPU %', 'calls', 'calls/s', 'errors', 'pods']];
  let previous: SoakSample | undefined;
  for (const s of milestones(r.samples)) {
    const rate = previous && s.seconds > previous.seconds ? ((s.calls - previous.calls) / (s.seconds - previous.seconds)).toFixed(0) : '';
    rows.push([
      clock(s.seconds),
      s.rssMb.toFixed(1),
      s.hwmMb.toFixed(1),
      Number.isFinite(s.cpuPct) ? s.cpuPct.toFixed(1) : '',
      String(s.calls),
      rate,
      String(s.errors),
      String(s.pods),
    ]);
    previous = s;
  }
  const methods: string[][] = [['method', 'calls', 'errors', 'max ms']];
  for (const [name, c] of Object.entries(r.methods).sort(([, a], [, b]) => b.calls - a.calls)) {
    methods.push([name, String(c.calls), String(c.errors), c.maxMs.toFixed(1)]);
  }
  const rssValues = r.samples.map((s) => s.rssMb);
  const lines = [
    `soak: ${r.runtime.name} (${r.runtime.description}), ${r.settings.seconds} s, ${r.settings.pods} pods, node ${r.node}, ${r.cpus} CPUs`,
    `proxy VmRSS idle ${r.idleRssMb} MB; under load ${first?.rssMb ?? 'n/a'} MB at the start, ${last?.rssMb ?? 'n/a'} MB at the end, ` +
      `${Math.min(...rssValues)}–${Math.max(...rssValues)} MB over ${r.samples.length} samples`,
    '',
    table(rows),
    '',
    table(methods),
    '',
    `skipped ticks (previous round still running): ${Object.entries(r.skippedTicks)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
    ...Object.entries(r.lastErrors).map(([m, e]) => `last ${m} error: ${e}`),
    `audit log: ${r.audit}`,
  ];
  return lines.join('\n');
}
