/** The long memory run: many calls through one proxy, its RSS sampled every so many calls. */
import { runPhase } from './load';
import { progress } from './log';
import { framedBytes, watched } from './measure';
import { memoryOf } from './processes';
import type { Row } from './rows';
import type { Runtime } from './runtimes';
import type { Settings } from './settings';
import { round } from './stats';
import type { SoakSample } from './result';
import { versionCall, type CallType } from './workloads';

function sample(row: Row, calls: number, callsPerSec: number, errors: number): SoakSample {
  const pid = row.relay?.pid;
  if (pid === undefined) throw new Error(`${row.name}: no process to sample`);
  const m = memoryOf(pid);
  return { calls, rssMb: round(m.rssKb / 1024, 1), hwmMb: round(m.hwmKb / 1024, 1), callsPerSec: round(callsPerSec, 0), errors };
}

/** `settings.soakCalls` calls, the small call types taking turns in equal shares; a sample before and after every step. */
export async function soak(runtime: Runtime, row: Row, settings: Settings): Promise<SoakSample[]> {
  const session = row.session;
  if (!session) throw new Error(`${row.name}: not connected`);
  const small = runtime.calls.filter((c) => c.size === 'small');
  const calls: readonly CallType[] = small.length > 0 ? small : [versionCall()];
  const samples = [sample(row, 0, Number.NaN, 0)];
  let done = 0;
  while (done < settings.soakCalls) {
    const step = Math.min(settings.soakSampleEvery, settings.soakCalls - done);
    let sent = 0;
    let errors = 0;
    let wallMs = 0;
    for (const [i, call] of calls.entries()) {
      const share = Math.floor(step / calls.length) + (i < step % calls.length ? 1 : 0);
      if (share === 0) continue;
      const spec = {
        call,
        expectedBytes: framedBytes(runtime, call),
        concurrency: settings.concurrency,
        durationMs: Infinity,
        maxCalls: share,
        recordLatency: false,
      };
      const result = await watched(runtime, row, runPhase(session, spec));
      sent += result.calls;
      errors += result.errors;
      wallMs += result.wallMs;
    }
    done += step;
    const s = sample(row, done, (sent * 1000) / wallMs, errors);
    samples.push(s);
    progress(
      `${runtime.name} ${row.name}: ${done} calls, VmRSS ${s.rssMb} MB, VmHWM ${s.hwmMb} MB${errors > 0 ? `, ${errors} failed` : ''}`,
    );
  }
  return samples;
}
