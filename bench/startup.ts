/**
 * How warm a fresh relay is: on a new connection, the first call of each kind after the start against the
 * median of the next ones. Lazy loading and first-use compilation show as a first call far slower than later.
 */
import { connect, timedCall } from './load';
import { framedBytes, watched } from './measure';
import type { Row } from './rows';
import type { Runtime } from './runtimes';
import { median, round } from './stats';
import type { StartupCall, StartupSummary } from './result';
import { versionCall } from './workloads';

export async function measureStartup(runtime: Runtime, row: Row, later: number): Promise<StartupSummary> {
  // Version first, as kubelet starts: then the calls of a pod start.
  const calls = [versionCall(), ...runtime.startupCalls];
  const session = await watched(runtime, row, connect(row.socketPath));
  try {
    let errors = 0;
    const samples = new Map<string, number[]>(calls.map((c) => [c.name, []]));
    for (let i = 0; i <= later; i++) {
      for (const call of calls) {
        const { ok, us } = await watched(runtime, row, timedCall(session, call, framedBytes(runtime, call)));
        if (!ok) errors++;
        samples.get(call.name)?.push(us);
      }
    }
    const summary: Record<string, StartupCall> = {};
    for (const [name, [first, ...rest]] of samples) {
      summary[name] = { firstUs: round(first ?? Number.NaN, 0), laterMedianUs: round(median(rest), 0) };
    }
    return { calls: summary, later, errors };
  } finally {
    session.close();
  }
}
