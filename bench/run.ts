/**
 * What cri-proxy costs per call, against calling the runtime directly and against a byte splice, measured in
 * one interleaved run. The rows (direct, the reference relays, the built cri-proxy CLI with and without the
 * config/node.yaml chain) stand in front of the fake runtime, and of a private containerd with
 * BENCH_CONTAINERD=1. A report goes to stdout with one `BENCH_RESULT {json}` line, and to
 * bench/results/latest.json. Not a test: nothing is asserted; targets are printed beside the numbers.
 * Settings: BENCH_* environment variables, see bench/README.md.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort } from '../test/e2e/harness/processes';
import { connect, waitUntilServing } from './load';
import { progress } from './log';
import { framedBytes, runRounds, watched } from './measure';
import { resultsDir } from './paths';
import { memoryOf, settledRssKb, waitUntilListening, type Child } from './processes';
import { formatProfileSummary, summarizeProfile } from './profile-summary';
import { formatReport } from './report';
import { DIRECT, startRows, type Row } from './rows';
import { containerdUnavailable, startFake, startPrivateContainerd, type Runtime } from './runtimes';
import { settingsFromEnv, type Settings } from './settings';
import { soak } from './memory-run';
import { runBursts, type BurstRecord } from './pod-burst';
import { measureStartup } from './startup';
import { round } from './stats';
import { summarizeBursts } from './burst-summary';
import { summarizeRuntime } from './summary';
import type { BenchResult, MemorySummary, PhaseRecord, RuntimeResult, SoakSample, StartupSummary, TargetCheck } from './result';

/** Everything that must go away at the end, whatever the end is (success, error, Ctrl-C). */
class Resources {
  readonly children: Child[] = [];
  readonly rows: Row[] = [];
  /** Runtimes' teardowns, each safe to run twice. */
  readonly teardowns: (() => Promise<void>)[] = [];
  /** Set on Ctrl-C: the failures that follow are the teardown's, not worth reporting. */
  interrupted = false;
  private cleaned: Promise<void> | undefined;

  constructor(readonly dir: string) {}

  cleanup(): Promise<void> {
    return (this.cleaned ??= (async () => {
      for (const row of this.rows) row.session?.destroy();
      await Promise.all(this.children.map((c) => c.stop(3000)));
      for (const teardown of this.teardowns) await teardown();
      fs.rmSync(this.dir, { recursive: true, force: true });
    })());
  }
}

const MB = (kb: number): number => round(kb / 1024, 1);

interface RuntimeRun {
  readonly result: RuntimeResult;
  readonly checks: readonly TargetCheck[];
  readonly phases: readonly PhaseRecord[];
  readonly bursts: readonly BurstRecord[];
}

/** Starts every row in front of `runtime`, measures them, and stops them again. */
async function runRuntime(runtime: Runtime, settings: Settings, res: Resources, options: { readonly soak: boolean }): Promise<RuntimeRun> {
  const dir = path.join(res.dir, runtime.name);
  const rows = startRows({
    rows: settings.rows,
    runtimeSocket: runtime.socketPath,
    dir,
    tracingExporter: settings.tracingExporter,
    closedPort: await freePort(),
    proxyNodeArgs: settings.proxyNodeArgs,
    profile: settings.profile,
    allowImages: runtime.allowImages ?? [],
  });
  res.rows.push(...rows);
  for (const row of rows) if (row.relay) res.children.push(row.relay);
  const startup: Record<string, StartupSummary> = {};
  const direct = rows[0] as Row;
  // Direct first: the runtime's own first calls are then behind it when the proxies make theirs.
  if (runtime.startupCalls.length > 0) startup[DIRECT] = await measureStartup(runtime, direct, settings.startupCalls);
  const idle = new Map<string, { listeningMs: number; rssKb: number; settled: boolean }>();
  for (const row of rows) {
    if (!row.relay) continue;
    const listeningMs = await waitUntilListening(row.relay, row.socketPath, 30_000);
    const { rssKb, settled } = await settledRssKb(row.relay, 5000);
    idle.set(row.name, { listeningMs, rssKb, settled });
    progress(`${runtime.name} ${row.name}: listening after ${Math.round(listeningMs)} ms, idle VmRSS ${MB(rssKb)} MB`);
  }
  if (runtime.startupCalls.length > 0) {
    for (const row of rows) if (row.kind === 'proxy') startup[row.name] = await measureStartup(runtime, row, settings.startupCalls);
  }
  const probe = runtime.calls[0];
  if (probe === undefined) throw new Error(`${runtime.name}: no call to measure`);
  for (const row of rows) {
    await watched(runtime, row, waitUntilServing(row.socketPath, probe, framedBytes(runtime, probe), 10_000));
    row.session = await connect(row.socketPath);
  }
  const phases = await runRounds(runtime, rows, settings);
  const bursts =
    runtime.pods !== undefined && settings.burstPods > 0
      ? await watched(
          runtime,
          direct,
          runBursts(rows, runtime.pods, { pods: settings.burstPods, rounds: settings.burstRounds, callTimeoutMs: 240_000 }),
        )
      : [];
  const memory: Record<string, MemorySummary> = {};
  for (const row of rows) {
    const before = idle.get(row.name);
    if (!row.relay || before === undefined) continue;
    const m = memoryOf(row.relay.pid);
    memory[row.name] = {
      listeningMs: round(before.listeningMs, 0),
      idleRssMb: MB(before.rssKb),
      idleSettled: before.settled,
      rssMb: MB(m.rssKb),
      hwmMb: MB(m.hwmKb),
    };
  }
  const soaked: Record<string, SoakSample[]> = {};
  if (options.soak && settings.soakCalls > 0) {
    for (const row of rows) if (row.kind === 'proxy') soaked[row.name] = await soak(runtime, row, settings);
  }
  if (settings.profile) await collectProfiles(runtime, rows);
  for (const row of rows) row.session?.close();
  await Promise.all(rows.flatMap((row) => (row.relay ? [row.relay.stop(3000)] : [])));
  const facts = {
    description: runtime.description,
    responseBytes: runtime.responseBytes,
    memory,
    skipped: runtime.skipped,
    ...(Object.keys(startup).length > 0 ? { startup } : {}),
    ...(Object.keys(soaked).length > 0 ? { soak: soaked } : {}),
    ...(bursts.length > 0 ? { bursts: summarizeBursts(bursts) } : {}),
  };
  return { ...summarizeRuntime(runtime.name, phases, facts), phases, bursts };
}

/** Stops the proxies gracefully (profiles are written on exit), keeps each profile and prints its summary. */
async function collectProfiles(runtime: Runtime, rows: readonly Row[]): Promise<void> {
  for (const row of rows) {
    if (!row.relay || row.profileDir === undefined) continue;
    row.session?.close();
    await row.relay.stop(10_000);
    const dir = row.profileDir;
    const file = fs.existsSync(dir) ? fs.readdirSync(dir).find((f) => f.endsWith('.cpuprofile')) : undefined;
    if (file === undefined) {
      progress(`${runtime.name} ${row.name}: no CPU profile was written (did the proxy exit cleanly?)`);
      continue;
    }
    fs.mkdirSync(resultsDir(), { recursive: true });
    const kept = path.join(resultsDir(), `${runtime.name === 'fake-runtime' ? '' : `${runtime.name}-`}${row.name}.cpuprofile`);
    fs.copyFileSync(path.join(dir, file), kept);
    process.stdout.write(`\nCPU profile of ${row.name} in front of ${runtime.name} (${path.relative(process.cwd(), kept)}):\n`);
    process.stdout.write(`${formatProfileSummary(summarizeProfile(JSON.parse(fs.readFileSync(kept, 'utf8')) as unknown))}\n`);
  }
}

async function runBench(settings: Settings, res: Resources): Promise<void> {
  if (settings.containerd) {
    const why = containerdUnavailable();
    if (why !== undefined) throw new Error(`BENCH_CONTAINERD=1, but a private containerd cannot run: ${why}`);
  }
  const runs: Record<string, RuntimeRun> = {};
  const fakeDir = path.join(res.dir, 'fake-runtime');
  fs.mkdirSync(fakeDir, { recursive: true });
  const fake = await startFake(fakeDir, settings.calls);
  res.teardowns.push(() => fake.stop());
  runs[fake.name] = await runRuntime(fake, settings, res, { soak: true });
  await fake.stop();
  if (settings.containerd) {
    progress('starting a private containerd');
    const ctd = await startPrivateContainerd(settings.calls, (stop) => res.teardowns.push(stop));
    if (ctd.calls.length > 0) runs[ctd.name] = await runRuntime(ctd, settings, res, { soak: false });
    else progress('containerd: none of BENCH_CALLS can be measured against it');
  }
  const all = Object.values(runs);
  const phases = all.flatMap((r) => r.phases);
  const bursts = all.flatMap((r) => r.bursts);
  const result: BenchResult = {
    schema: 2,
    at: new Date().toISOString(),
    node: process.version,
    cpus: os.cpus().length,
    settings: {
      phaseSeconds: settings.phaseSeconds,
      rounds: settings.rounds,
      concurrency: settings.concurrency,
      largeConcurrency: settings.largeConcurrency,
      tracingExporter: settings.tracingExporter,
      proxyNodeArgs: settings.proxyNodeArgs,
      profiling: settings.profile,
    },
    runtimes: Object.fromEntries(Object.entries(runs).map(([name, r]) => [name, r.result])),
    checks: all.flatMap((r) => r.checks),
    errors: phases.reduce((sum, p) => sum + p.errors, 0),
  };
  process.stdout.write(`\n${formatReport(result)}\n`);
  process.stdout.write(`BENCH_RESULT ${JSON.stringify(result)}\n`);
  fs.mkdirSync(resultsDir(), { recursive: true });
  fs.writeFileSync(path.join(resultsDir(), 'latest.json'), JSON.stringify({ ...result, phases, bursts }, null, 2) + '\n');
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
