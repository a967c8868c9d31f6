/** The bench's settings, all from BENCH_* environment variables (see bench/README.md). */
import { PROXY_VARIANTS, type TracingExporterMode } from './proxy-config';
import { REFERENCE_ROWS } from './rows';
import { lifecycleCalls, measuredCalls, type CallType } from './workloads';

export interface Settings {
  readonly phaseSeconds: number;
  readonly rounds: number;
  /** Concurrent calls of the throughput phases of small calls. */
  readonly concurrency: number;
  /** Concurrent calls of the throughput phases of large calls (a 5 MB answer each). */
  readonly largeConcurrency: number;
  readonly warmupSeconds: number;
  readonly calls: readonly CallType[];
  /** Rows besides direct, in report order. */
  readonly rows: readonly string[];
  readonly tracingExporter: TracingExporterMode;
  /** Later calls of each kind the first RunPodSandbox and CreateContainer are compared with. */
  readonly startupCalls: number;
  /** Calls of the long memory run per proxy variant; 0 skips it. */
  readonly soakCalls: number;
  readonly soakSampleEvery: number;
  readonly containerd: boolean;
  /** Pods per pod-start burst (with containerd), and rounds of bursts; 0 pods skips the burst. */
  readonly burstPods: number;
  readonly burstRounds: number;
  readonly profile: boolean;
  readonly proxyNodeArgs: readonly string[];
}

export function numberFromEnv(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min) throw new Error(`${name}=${raw}: expected a number ≥ ${min}`);
  return value;
}

function listFromEnv(name: string): string[] | undefined {
  const list = process.env[name]
    ?.split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  return list === undefined || list.length === 0 ? undefined : list;
}

/** The items `name` lists (by key), or `defaults` when it lists none; `all` holds every item it may name. */
function pick<T>(name: string, all: readonly T[], key: (t: T) => string, defaults: readonly T[] = all): T[] {
  const wanted = listFromEnv(name);
  if (wanted === undefined) return [...defaults];
  const unknown = wanted.filter((w) => !all.some((t) => key(t) === w));
  if (unknown.length > 0) throw new Error(`${name}: unknown ${unknown.join(', ')}; expected some of: ${all.map(key).join(', ')}`);
  return all.filter((t) => wanted.includes(key(t)));
}

export function flagFromEnv(name: string): boolean {
  const raw = process.env[name];
  if (raw === undefined || raw === '' || raw === '0') return false;
  if (raw === '1') return true;
  throw new Error(`${name}=${raw}: expected 1 or 0`);
}

export function settingsFromEnv(): Settings {
  const allRows = [...REFERENCE_ROWS.map((r) => r.name), ...PROXY_VARIANTS.map((v) => v.name)];
  // The comparison rows (pod starts off) only when BENCH_ROWS names them.
  const defaultRows = [...REFERENCE_ROWS.map((r) => r.name), ...PROXY_VARIANTS.filter((v) => v.podStartsOff !== true).map((v) => v.name)];
  const exporter = process.env.BENCH_TRACING_EXPORTER ?? 'unreachable';
  if (exporter !== 'unreachable' && exporter !== 'none')
    throw new Error(`BENCH_TRACING_EXPORTER=${exporter}: expected unreachable or none`);
  const calls = pick('BENCH_CALLS', [...measuredCalls(), ...lifecycleCalls()], (c) => c.name, measuredCalls());
  if (calls.length === 0) throw new Error('BENCH_CALLS selects no call');
  return {
    phaseSeconds: numberFromEnv('BENCH_SECONDS', 2, 0.2),
    rounds: Math.round(numberFromEnv('BENCH_ROUNDS', 5, 1)),
    concurrency: Math.round(numberFromEnv('BENCH_CONCURRENCY', 32, 2)),
    largeConcurrency: Math.round(numberFromEnv('BENCH_LARGE_CONCURRENCY', 4, 2)),
    warmupSeconds: numberFromEnv('BENCH_WARMUP_SECONDS', 1, 0),
    calls,
    rows: pick('BENCH_ROWS', allRows, (r) => r, defaultRows),
    tracingExporter: exporter,
    startupCalls: Math.round(numberFromEnv('BENCH_STARTUP_CALLS', 20, 1)),
    soakCalls: Math.round(numberFromEnv('BENCH_CALLS_TOTAL', 0, 0)),
    soakSampleEvery: Math.round(numberFromEnv('BENCH_RSS_EVERY', 100_000, 1000)),
    containerd: flagFromEnv('BENCH_CONTAINERD'),
    burstPods: Math.round(numberFromEnv('BENCH_PODS', 50, 0)),
    burstRounds: Math.round(numberFromEnv('BENCH_POD_ROUNDS', 3, 1)),
    profile: flagFromEnv('BENCH_PROFILE'),
    // The proxy runs with the flags the release runs it with (src/cli.ts) unless told otherwise.
    proxyNodeArgs: (process.env.BENCH_PROXY_NODE_ARGS ?? '--max-semi-space-size=1').split(/\s+/).filter((a) => a !== ''),
  };
}
