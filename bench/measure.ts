/** The measured rounds: the same closed-loop load against every row in turn, so drift hits them all alike. */
import { GRPC_PREFIX_BYTES } from './cri-messages';
import { runPhase, type PhaseSpec } from './load';
import { progress } from './log';
import { cpuMicros, syscallsOf, type Watched } from './processes';
import type { Row } from './rows';
import type { Runtime } from './runtimes';
import type { Settings } from './settings';
import { percentiles, round } from './stats';
import type { PhaseRecord, Workload } from './result';
import type { CallType } from './workloads';

/** The framed DATA bytes a correct answer to `call` carries. */
export function framedBytes(runtime: Runtime, call: CallType): number {
  const bytes = runtime.responseBytes[call.name];
  if (bytes === undefined) throw new Error(`${runtime.name}: no response size for ${call.name}`);
  return bytes + GRPC_PREFIX_BYTES;
}

/** `work`, unless the runtime or the row's relay dies first. */
export function watched<T>(runtime: Runtime, row: Row, work: Promise<T>): Promise<T> {
  const guards: Watched[] = [runtime.process, ...(row.relay ? [row.relay] : [])];
  return guards.reduce((p, g) => g.unlessItDies(p), work);
}

async function measure(runtime: Runtime, row: Row, spec: PhaseSpec, roundNo: number, workload: Workload): Promise<PhaseRecord> {
  const session = row.session;
  if (!session) throw new Error(`${row.name}: not connected`);
  const relayPid = row.relay?.pid;
  const relayBefore = relayPid === undefined ? 0 : cpuMicros(relayPid);
  const ioBefore = relayPid === undefined ? undefined : syscallsOf(relayPid);
  const runtimeBefore = cpuMicros(runtime.process.pid);
  const clientBefore = process.cpuUsage();
  const result = await watched(runtime, row, runPhase(session, spec));
  const relayCpu = relayPid === undefined ? 0 : cpuMicros(relayPid) - relayBefore;
  const ioAfter = relayPid === undefined ? undefined : syscallsOf(relayPid);
  const runtimeCpu = cpuMicros(runtime.process.pid) - runtimeBefore;
  const clientUsage = process.cpuUsage(clientBefore);
  const clientCpu = clientUsage.user + clientUsage.system;
  const [p50, p99] = result.latenciesUs ? percentiles(result.latenciesUs, [50, 99]) : [undefined, undefined];
  const perCall = (us: number): number => round(us / Math.max(1, result.calls), 2);
  return {
    runtime: runtime.name,
    round: roundNo,
    call: spec.call.name,
    size: spec.call.size,
    workload,
    concurrency: spec.concurrency,
    row: row.name,
    kind: row.kind,
    calls: result.calls,
    errors: result.errors,
    wallMs: round(result.wallMs, 1),
    callsPerSec: round((result.calls * 1000) / result.wallMs, 1),
    p50Us: p50 === undefined ? undefined : round(p50, 1),
    p99Us: p99 === undefined ? undefined : round(p99, 1),
    relayCpuUsPerCall: relayPid === undefined ? undefined : perCall(relayCpu),
    relayReadsPerCall: ioBefore && ioAfter ? perCall(ioAfter.reads - ioBefore.reads) : undefined,
    relayWritesPerCall: ioBefore && ioAfter ? perCall(ioAfter.writes - ioBefore.writes) : undefined,
    runtimeCpuUsPerCall: perCall(runtimeCpu),
    clientCpuUsPerCall: perCall(clientCpu),
    coresBusy: round((relayCpu + runtimeCpu + clientCpu) / (result.wallMs * 1000), 2),
  };
}

function throughputConcurrency(settings: Settings, call: CallType): number {
  return call.size === 'large' ? settings.largeConcurrency : settings.concurrency;
}

/** Warm-up, then `settings.rounds` rounds; within a round the rows take turns, starting one further each round. */
export async function runRounds(runtime: Runtime, rows: readonly Row[], settings: Settings): Promise<PhaseRecord[]> {
  const ms = (s: number): number => s * 1000;
  for (const call of runtime.calls) {
    for (const row of rows) {
      const spec = {
        call,
        expectedBytes: framedBytes(runtime, call),
        concurrency: throughputConcurrency(settings, call),
        durationMs: ms(settings.warmupSeconds),
        recordLatency: true,
      };
      await measure(runtime, row, spec, 0, 'throughput');
    }
  }
  const phases: PhaseRecord[] = [];
  for (let r = 1; r <= settings.rounds; r++) {
    // Rotating who goes first keeps a slow start of every round from always landing on the same row.
    const order = rows.map((_, i) => rows[(i + r - 1) % rows.length] as Row);
    for (const call of runtime.calls) {
      const workloads: readonly [Workload, number][] = [
        ['throughput', throughputConcurrency(settings, call)],
        ['latency', 1],
      ];
      for (const [workload, concurrency] of workloads) {
        for (const row of order) {
          const spec = {
            call,
            expectedBytes: framedBytes(runtime, call),
            concurrency,
            durationMs: ms(settings.phaseSeconds),
            recordLatency: workload === 'latency',
          };
          const p = await measure(runtime, row, spec, r, workload);
          phases.push(p);
          const lat = p.p50Us === undefined ? '' : ` p50 ${p.p50Us} µs p99 ${p.p99Us ?? 'n/a'} µs`;
          const cpu = p.relayCpuUsPerCall === undefined ? '' : ` relay ${p.relayCpuUsPerCall} µs/call`;
          progress(
            `${runtime.name} round ${r}/${settings.rounds} ${call.name} @${concurrency} ${row.name}: ${p.callsPerSec}/s${lat}${cpu}${p.errors > 0 ? ` ERRORS ${p.errors}` : ''}`,
          );
        }
      }
    }
  }
  return phases;
}
