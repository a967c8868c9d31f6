/**
 * The proxy's cost per call, as ratios against calling the runtime directly. One run: a fake runtime and the
 * built cri-proxy CLI as child processes in a temp dir, the same closed-loop load alternately against the
 * runtime's socket and the proxy's, a report on stdout plus one `BENCH_RESULT {json}` line, and
 * bench/results/latest.json. Not a test: nothing is asserted; targets are printed beside the numbers.
 *
 * Environment: BENCH_SECONDS (one measured phase, default 2), BENCH_ROUNDS (default 5), BENCH_CONCURRENCY
 * (default 32), BENCH_WARMUP_SECONDS (per call type and target, default 1), BENCH_CALLS (e.g. "Version"),
 * BENCH_PROFILE=1 (run the proxy under --cpu-prof; the profile and its summary land in bench/results/),
 * BENCH_PROXY_NODE_ARGS (extra node flags for the proxy, e.g. "--max-semi-space-size=2").
 */
import * as fs from 'node:fs';
import type * as http2 from 'node:http2';
import * as os from 'node:os';
import * as path from 'node:path';
import { connect, runPhase, waitUntilServing, type PhaseSpec } from './load';
import { Child, cpuMicros, memoryOf, startFakeRuntime, startProxy, syscallsOf } from './processes';
import { formatProfileSummary, summarizeProfile } from './profile-summary';
import { DIRECT, buildResult, formatReport, type MemorySummary, type PhaseRecord, type Workload } from './report';
import { percentiles, round } from './stats';
import { listContainersCall, versionCall, type CallType } from './workloads';

interface Settings {
  readonly phaseSeconds: number;
  readonly rounds: number;
  readonly concurrency: number;
  readonly warmupSeconds: number;
  readonly calls: readonly CallType[];
  readonly profile: boolean;
  readonly proxyNodeArgs: readonly string[];
}

/**
 * The proxies measured against direct calls. "proxy+chain" is where the cost of a typical chain will be
 * measured: give it the interceptor entries of a realistic config (as in config/cri-proxy.yaml) once
 * interceptor types exist; until then it is reported as skipped.
 */
interface ProxyVariant {
  readonly name: string;
  /** Config `interceptors` entries; undefined skips the variant. */
  readonly interceptors: readonly Readonly<Record<string, unknown>>[] | undefined;
  readonly skipReason?: string;
}

const VARIANTS: readonly ProxyVariant[] = [
  { name: 'proxy', interceptors: [] },
  // Tracing (spans built, not exported) and metrics: the cost of observing every call.
  {
    name: 'proxy+chain',
    interceptors: [
      { name: 'tracing', type: 'tracing', onError: 'failOpen', config: { exporter: { type: 'none' } } },
      { name: 'metrics', type: 'metrics', onError: 'failOpen' },
    ],
  },
];

interface Target {
  readonly name: string;
  readonly socketPath: string;
  readonly proxy: Child | undefined;
  session: http2.ClientHttp2Session | undefined;
}

const RESULTS_DIR = path.resolve(__dirname, '..', '..', 'bench', 'results');

function numberFromEnv(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min) throw new Error(`${name}=${raw}: expected a number ≥ ${min}`);
  return value;
}

function settingsFromEnv(): Settings {
  const all = [versionCall(), listContainersCall()];
  const wanted = process.env.BENCH_CALLS?.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const calls = wanted && wanted.length > 0 ? all.filter((c) => wanted.includes(c.name)) : all;
  if (calls.length === 0) throw new Error(`BENCH_CALLS matches none of: ${all.map((c) => c.name).join(', ')}`);
  return {
    phaseSeconds: numberFromEnv('BENCH_SECONDS', 2, 0.2),
    rounds: Math.round(numberFromEnv('BENCH_ROUNDS', 5, 1)),
    concurrency: Math.round(numberFromEnv('BENCH_CONCURRENCY', 32, 2)),
    warmupSeconds: numberFromEnv('BENCH_WARMUP_SECONDS', 1, 0),
    calls,
    profile: process.env.BENCH_PROFILE === '1',
    proxyNodeArgs: (process.env.BENCH_PROXY_NODE_ARGS ?? '').split(/\s+/).filter((a) => a !== ''),
  };
}

/** Everything that must go away at the end, whatever the end is (success, error, Ctrl-C). */
class Resources {
  readonly children: Child[] = [];
  readonly targets: Target[] = [];
  /** Set on Ctrl-C: the failures that follow are the teardown's, not worth reporting. */
  interrupted = false;
  private cleaned: Promise<void> | undefined;

  constructor(readonly dir: string) {}

  cleanup(): Promise<void> {
    return (this.cleaned ??= (async () => {
      for (const t of this.targets) t.session?.destroy();
      await Promise.all(this.children.map((c) => c.stop(3000)));
      fs.rmSync(this.dir, { recursive: true, force: true });
    })());
  }
}

function progress(line: string): void {
  process.stderr.write(`${line}\n`);
}

async function startTargets(settings: Settings, res: Resources): Promise<{ fake: Child; responseBytes: Readonly<Record<string, number>> }> {
  const runtimeSocket = path.join(res.dir, 'runtime.sock');
  const { child: fake, responseBytes } = await startFakeRuntime(runtimeSocket);
  res.children.push(fake);
  res.targets.push({ name: DIRECT, socketPath: runtimeSocket, proxy: undefined, session: undefined });
  for (const [i, variant] of VARIANTS.entries()) {
    if (variant.interceptors === undefined) continue;
    const configFile = path.join(res.dir, `proxy-${i}.yaml`);
    // JSON is YAML; per-call logs would measure the logger, and no admin port is wanted.
    const config = { logLevel: 'warn', http: { listen: '' }, shutdownGraceSeconds: 1, interceptors: variant.interceptors };
    fs.writeFileSync(configFile, JSON.stringify(config, null, 2));
    const profiling = settings.profile ? ['--cpu-prof', '--cpu-prof-dir', path.join(res.dir, `profile-${i}`)] : [];
    const nodeArgs = [...settings.proxyNodeArgs, ...profiling];
    const socketPath = path.join(res.dir, `proxy-${i}.sock`);
    const proxy = startProxy({ name: variant.name, configFile, listen: socketPath, upstream: runtimeSocket, nodeArgs });
    res.children.push(proxy);
    res.targets.push({ name: variant.name, socketPath, proxy, session: undefined });
  }
  for (const target of res.targets) {
    const probe = settings.calls[0] as CallType;
    const serving = waitUntilServing(target.socketPath, probe, framed(responseBytes, probe), 10_000);
    await (target.proxy ? target.proxy.unlessItDies(serving) : fake.unlessItDies(serving));
    target.session = await connect(target.socketPath);
  }
  return { fake, responseBytes };
}

function framed(responseBytes: Readonly<Record<string, number>>, call: CallType): number {
  const bytes = responseBytes[call.name];
  if (bytes === undefined) throw new Error(`the fake runtime did not report a response size for ${call.name}`);
  return bytes + 5;
}

async function measure(target: Target, fake: Child, spec: PhaseSpec, roundNo: number, workload: Workload): Promise<PhaseRecord> {
  const session = target.session;
  if (!session) throw new Error(`${target.name}: not connected`);
  const proxyPid = target.proxy?.pid;
  const proxyBefore = proxyPid === undefined ? 0 : cpuMicros(proxyPid);
  const ioBefore = proxyPid === undefined ? undefined : syscallsOf(proxyPid);
  const runtimeBefore = cpuMicros(fake.pid);
  const clientBefore = process.cpuUsage();
  let phase = fake.unlessItDies(runPhase(session, spec));
  if (target.proxy) phase = target.proxy.unlessItDies(phase);
  const result = await phase;
  const proxyCpu = proxyPid === undefined ? 0 : cpuMicros(proxyPid) - proxyBefore;
  const ioAfter = proxyPid === undefined ? undefined : syscallsOf(proxyPid);
  const runtimeCpu = cpuMicros(fake.pid) - runtimeBefore;
  const clientUsage = process.cpuUsage(clientBefore);
  const clientCpu = clientUsage.user + clientUsage.system;
  const [p50, p99] = result.latenciesUs ? percentiles(result.latenciesUs, [50, 99]) : [undefined, undefined];
  const perCall = (us: number): number => round(us / Math.max(1, result.calls), 2);
  return {
    round: roundNo,
    call: spec.call.name,
    workload,
    concurrency: spec.concurrency,
    target: target.name,
    calls: result.calls,
    errors: result.errors,
    wallMs: round(result.wallMs, 1),
    callsPerSec: round((result.calls * 1000) / result.wallMs, 1),
    p50Us: p50 === undefined ? undefined : round(p50, 1),
    p99Us: p99 === undefined ? undefined : round(p99, 1),
    proxyCpuUsPerCall: proxyPid === undefined ? undefined : perCall(proxyCpu),
    proxyReadsPerCall: ioBefore && ioAfter ? perCall(ioAfter.reads - ioBefore.reads) : undefined,
    proxyWritesPerCall: ioBefore && ioAfter ? perCall(ioAfter.writes - ioBefore.writes) : undefined,
    runtimeCpuUsPerCall: perCall(runtimeCpu),
    clientCpuUsPerCall: perCall(clientCpu),
    coresBusy: round((proxyCpu + runtimeCpu + clientCpu) / (result.wallMs * 1000), 2),
  };
}

async function runBench(settings: Settings, res: Resources): Promise<void> {
  const { fake, responseBytes } = await startTargets(settings, res);
  const ms = (s: number): number => s * 1000;
  for (const call of settings.calls) {
    for (const target of res.targets) {
      const spec = { call, expectedBytes: framed(responseBytes, call), concurrency: settings.concurrency, durationMs: ms(settings.warmupSeconds), recordLatency: true };
      await measure(target, fake, spec, 0, 'throughput');
    }
  }
  const workloads: readonly [Workload, number][] = [
    ['throughput', settings.concurrency],
    ['latency', 1],
  ];
  const phases: PhaseRecord[] = [];
  for (let r = 1; r <= settings.rounds; r++) {
    for (const call of settings.calls) {
      for (const [workload, concurrency] of workloads) {
        // Targets back to back, so whatever the machine does meanwhile hits direct and proxied alike.
        for (const target of res.targets) {
          const spec = { call, expectedBytes: framed(responseBytes, call), concurrency, durationMs: ms(settings.phaseSeconds), recordLatency: workload === 'latency' };
          const p = await measure(target, fake, spec, r, workload);
          phases.push(p);
          const lat = p.p50Us === undefined ? '' : ` p50 ${p.p50Us} µs p99 ${p.p99Us ?? 'n/a'} µs`;
          const cpu = p.proxyCpuUsPerCall === undefined ? '' : ` proxy ${p.proxyCpuUsPerCall} µs/call`;
          progress(`round ${r}/${settings.rounds} ${call.name} @${concurrency} ${target.name}: ${p.callsPerSec}/s${lat}${cpu}${p.errors > 0 ? ` ERRORS ${p.errors}` : ''}`);
        }
      }
    }
  }
  const memory: Record<string, MemorySummary> = {};
  for (const target of res.targets) {
    if (!target.proxy) continue;
    const m = memoryOf(target.proxy.pid);
    memory[target.name] = { rssMb: round(m.rssKb / 1024, 1), hwmMb: round(m.hwmKb / 1024, 1) };
  }
  const skipped: Record<string, string> = {};
  for (const v of VARIANTS) if (v.interceptors === undefined) skipped[v.name] = v.skipReason ?? 'disabled';
  const result = buildResult(phases, {
    settings: {
      phaseSeconds: settings.phaseSeconds,
      rounds: settings.rounds,
      concurrency: settings.concurrency,
      proxyNodeArgs: settings.proxyNodeArgs,
      profiling: settings.profile,
    },
    responseBytes,
    memory,
    skipped,
    cpus: os.cpus().length,
  });
  process.stdout.write(`\n${formatReport(result)}\n`);
  const json = JSON.stringify(result);
  process.stdout.write(`BENCH_RESULT ${json}\n`);
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  fs.writeFileSync(path.join(RESULTS_DIR, 'latest.json'), JSON.stringify({ ...result, phases }, null, 2) + '\n');
  if (settings.profile) await collectProfiles(res);
}

/** Stops the proxies gracefully (profiles are written on exit), keeps each profile and prints its summary. */
async function collectProfiles(res: Resources): Promise<void> {
  for (const t of res.targets) t.session?.close();
  for (const [i, variant] of VARIANTS.entries()) {
    const target = res.targets.find((t) => t.name === variant.name);
    if (!target?.proxy) continue;
    await target.proxy.stop(10_000);
    const dir = path.join(res.dir, `profile-${i}`);
    const file = fs.existsSync(dir) ? fs.readdirSync(dir).find((f) => f.endsWith('.cpuprofile')) : undefined;
    if (file === undefined) {
      progress(`${variant.name}: no CPU profile was written (did the proxy exit cleanly?)`);
      continue;
    }
    const kept = path.join(RESULTS_DIR, `${variant.name}.cpuprofile`);
    fs.copyFileSync(path.join(dir, file), kept);
    process.stdout.write(`\nCPU profile of ${variant.name} (${path.relative(process.cwd(), kept)}):\n`);
    process.stdout.write(`${formatProfileSummary(summarizeProfile(JSON.parse(fs.readFileSync(kept, 'utf8')) as unknown))}\n`);
  }
}

async function main(): Promise<number> {
  const settings = settingsFromEnv();
  const res = new Resources(fs.mkdtempSync(path.join(os.tmpdir(), 'cri-bench-')));
  const interrupted = (signal: NodeJS.Signals): void => {
    progress(`${signal}: stopping`);
    res.interrupted = true;
    void res.cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    await runBench(settings, res);
    return 0;
  } catch (err) {
    if (res.interrupted) return 130;
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 1;
  } finally {
    await res.cleanup();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${String(err)}\n`);
    process.exit(1);
  },
);
