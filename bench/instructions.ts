/**
 * Instructions per call, counted by valgrind's callgrind: unlike CPU time, the count of a row does not depend on
 * what else the machine is doing, so a change to the data plane shows as a number that repeats from run to run.
 * Each relay runs under callgrind with counting off; after a warm-up, counting is switched on, zeroed, and
 * `BENCH_INSTRUCTION_CALLS` calls are counted. Kernel time (the syscalls) is not in the count.
 * `node dist/bench/instructions.js` (needs valgrind); settings in bench/README.md.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../test/e2e/harness/processes';
import { costGroup, dumpTotal, functionCosts, type FunctionCost } from './callgrind';
import { connect, runPhase } from './load';
import { progress } from './log';
import { framedBytes, watched } from './measure';
import { resultsDir } from './paths';
import { waitUntilListening } from './processes';
import { startRows, type Row } from './rows';
import { startFake } from './runtimes';
import { numberFromEnv, settingsFromEnv } from './settings';
import { round } from './stats';
import type { CallType } from './workloads';

const DEFAULT_ROWS = ['splice', 'proxy', 'proxy+chain'];

interface Counted {
  readonly row: string;
  readonly call: string;
  readonly instructionsPerCall: number;
  readonly groups?: Readonly<Record<string, number>>;
  readonly top?: readonly FunctionCost[];
}

function callgrind(control: readonly string[], pid: number): void {
  execFileSync('callgrind_control', [...control, String(pid)], { stdio: 'ignore' });
}

/** Waits for the dump callgrind writes after `-d` (a new file in `dir`) and returns its path. */
async function nextDump(dir: string, seen: Set<string>): Promise<string> {
  for (let i = 0; i < 600; i++) {
    const fresh = fs.readdirSync(dir).filter((f) => /^callgrind\.out\.\d+$/.test(f) && !seen.has(f));
    const file = fresh[0];
    if (file !== undefined) {
      await sleep(200);
      seen.add(file);
      return path.join(dir, file);
    }
    await sleep(100);
  }
  throw new Error(`no callgrind dump appeared in ${dir}`);
}

async function countRow(
  row: Row,
  calls: readonly CallType[],
  expected: (c: CallType) => number,
  options: CountOptions,
): Promise<Counted[]> {
  const relay = row.relay;
  if (relay === undefined) return [];
  await waitUntilListening(relay, row.socketPath, 180_000);
  const session = await connect(row.socketPath);
  const spec = (call: CallType, n: number) => ({
    call,
    expectedBytes: expected(call),
    concurrency: options.concurrency,
    durationMs: Infinity,
    maxCalls: n,
    recordLatency: false,
  });
  const out: Counted[] = [];
  const dir = path.dirname(options.outFile(row.name));
  const seen = new Set<string>();
  try {
    // Uncounted first: the JIT settles; then counting on, and a short instrumented warm-up.
    for (const call of calls) await relay.unlessItDies(runPhase(session, spec(call, options.warmup)));
    callgrind(['-i', 'on'], relay.pid);
    for (const call of calls) {
      await relay.unlessItDies(runPhase(session, spec(call, Math.ceil(options.warmup / 10))));
      callgrind(['-z'], relay.pid);
      const result = await relay.unlessItDies(runPhase(session, spec(call, options.calls)));
      callgrind(['-d'], relay.pid);
      const dump = await nextDump(dir, seen);
      if (result.errors > 0) throw new Error(`${row.name} ${call.name}: ${result.errors} calls failed`);
      const perCall = (n: number): number => Math.round(n / result.calls);
      const counted: Counted = { row: row.name, call: call.name, instructionsPerCall: perCall(dumpTotal(dump)) };
      if (options.top > 0) {
        const costs = functionCosts(dump, options.perfMap(relay.pid));
        const groups: Record<string, number> = {};
        for (const c of costs) groups[costGroup(c.name)] = (groups[costGroup(c.name)] ?? 0) + c.instructions;
        out.push({
          ...counted,
          groups: Object.fromEntries(Object.entries(groups).map(([g, n]) => [g, perCall(n)])),
          top: costs.slice(0, options.top).map((c) => ({ name: c.name, instructions: perCall(c.instructions) })),
        });
      } else out.push(counted);
      progress(`${row.name} ${call.name}: ${counted.instructionsPerCall} instructions per call`);
    }
  } finally {
    session.close();
  }
  return out;
}

interface CountOptions {
  readonly calls: number;
  readonly warmup: number;
  readonly concurrency: number;
  readonly top: number;
  readonly outFile: (row: string) => string;
  readonly perfMap: (pid: number) => string | undefined;
}

function format(results: readonly Counted[], options: CountOptions): string {
  const lines = [
    `instructions per call (callgrind), ${options.calls} calls at ${options.concurrency} at once after ${options.warmup} uncounted`,
    options.top > 0 ? '(named with --perf-basic-prof, which adds a little to the counts)' : '',
    '',
    `${'row'.padEnd(14)} ${'call'.padEnd(16)} ${'instructions'.padStart(12)} ${'×splice'.padStart(8)}`,
  ];
  for (const r of results) {
    const splice = results.find((s) => s.row === 'splice' && s.call === r.call)?.instructionsPerCall;
    const ratio = splice === undefined ? '' : round(r.instructionsPerCall / splice, 2).toFixed(2);
    lines.push(`${r.row.padEnd(14)} ${r.call.padEnd(16)} ${String(r.instructionsPerCall).padStart(12)} ${ratio.padStart(8)}`);
  }
  for (const r of results) {
    if (r.groups === undefined || r.top === undefined) continue;
    lines.push('', `${r.row} ${r.call}: by group`);
    for (const [g, n] of Object.entries(r.groups).sort((a, b) => b[1] - a[1])) lines.push(`  ${String(n).padStart(8)}  ${g}`);
    lines.push(`${r.row} ${r.call}: heaviest functions`);
    for (const f of r.top) lines.push(`  ${String(f.instructions).padStart(8)}  ${f.name}`);
  }
  return lines.filter((l, i) => l !== '' || i > 0).join('\n');
}

async function main(): Promise<void> {
  const settings = settingsFromEnv();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cri-instructions-'));
  const top = Math.round(numberFromEnv('BENCH_INSTRUCTION_TOP', 0, 0));
  const options: CountOptions = {
    calls: Math.round(numberFromEnv('BENCH_INSTRUCTION_CALLS', 2000, 10)),
    warmup: Math.round(numberFromEnv('BENCH_INSTRUCTION_WARMUP', 10000, 0)),
    concurrency: Math.round(numberFromEnv('BENCH_INSTRUCTION_CONCURRENCY', 1, 1)),
    top,
    outFile: (row) => path.join(dir, `cg-${row.replace(/[^a-z0-9-]/gi, '_')}`, 'callgrind.out'),
    perfMap: (pid) => (top > 0 ? `/tmp/perf-${pid}.map` : undefined),
  };
  // The small calls unless told otherwise: a large answer under callgrind takes long.
  const calls = settings.calls.filter((c) => process.env.BENCH_CALLS !== undefined || c.size === 'small');
  const rowNames = process.env.BENCH_ROWS === undefined ? DEFAULT_ROWS : settings.rows;
  fs.mkdirSync(path.join(dir, 'runtime'));
  const fake = await startFake(path.join(dir, 'runtime'), calls);
  const results: Counted[] = [];
  try {
    for (const name of rowNames) {
      const outFile = options.outFile(name);
      fs.mkdirSync(path.dirname(outFile), { recursive: true });
      const valgrind = ['valgrind', '--tool=callgrind', '--instr-atstart=no', `--callgrind-out-file=${outFile}`];
      // One row at a time: under callgrind each relay is some fifty times slower.
      const rows = startRows({
        rows: [name],
        runtimeSocket: fake.socketPath,
        dir: path.join(dir, 'rows', name.replace(/[^a-z0-9-]/gi, '_')),
        tracingExporter: settings.tracingExporter,
        closedPort: await freePort(),
        proxyNodeArgs: [...settings.proxyNodeArgs, ...(top > 0 ? ['--perf-basic-prof'] : [])],
        profile: false,
        wrapper: () => valgrind,
      });
      const row = rows[1] as Row;
      try {
        results.push(
          ...(await watched(
            fake,
            row,
            countRow(row, calls, (c) => framedBytes(fake, c), options),
          )),
        );
      } finally {
        await row.relay?.stop(5000);
        const map = row.relay === undefined ? undefined : options.perfMap(row.relay.pid);
        if (map !== undefined) fs.rmSync(map, { force: true });
      }
    }
  } finally {
    await fake.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const report = format(results, options);
  process.stdout.write(`${report}\n`);
  fs.mkdirSync(resultsDir(), { recursive: true });
  fs.writeFileSync(
    path.join(resultsDir(), 'instructions.json'),
    JSON.stringify({ at: new Date().toISOString(), options, results }, null, 2) + '\n',
  );
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`instruction count failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
