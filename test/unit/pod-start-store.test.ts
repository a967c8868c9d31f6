import { MAX_KEPT_PHASES, MAX_MESSAGE, MAX_TEXT, PodStartStore, type KeptPodStart } from '../../src/observability/pod-start-store';
import type { PodStart, PodStartPhase, PodStartPhaseName } from '../../src/observability/pod-start-tracker';

const HOUR = 3_600_000;
const T0 = Date.UTC(2025, 0, 31, 12, 0, 0);

/** A wall clock the test moves. */
class Clock {
  constructor(public ms = T0) {}
  readonly now = (): number => this.ms;
}

const at = (ms: number) => ({ epochMs: ms, hrtime: 0n });

function phase(name: PodStartPhaseName, from: number, to: number, extra: Partial<PodStartPhase> = {}): PodStartPhase {
  return {
    phase: name,
    detail: undefined,
    image: undefined,
    start: at(from),
    end: at(to),
    durationMs: to - from,
    code: 0,
    message: undefined,
    links: [],
    ...extra,
  };
}

/** A pod start that began at `begin` (epoch ms) with phases given as offsets from it. */
function podStart(uid: string, begin: number, phases: readonly PodStartPhase[], extra: Partial<PodStart> = {}): PodStart {
  const shifted = phases.map((p) => ({ ...p, start: at(begin + p.start.epochMs), end: at(begin + p.end.epochMs) }));
  const end = Math.max(...shifted.map((p) => p.end.epochMs));
  const phaseTotals = { sandbox: 0, pull: 0, create: 0, start: 0 };
  for (const p of shifted) phaseTotals[p.phase] += p.durationMs;
  return {
    uid,
    name: `pod-${uid}`,
    namespace: 'default',
    sandboxId: `sb-${uid}`,
    runtimeHandler: 'runc',
    backend: 'containerd',
    start: at(begin),
    end: at(end),
    totalMs: end - begin,
    status: 'ok',
    code: 0,
    phases: shifted,
    phasesDropped: 0,
    phaseTotals,
    containers: shifted.filter((p) => p.phase === 'start').length,
    ...extra,
  };
}

/** A one-container start of `totalMs`, finishing `endMsAgo` before the clock's now. */
function simple(uid: string, clock: Clock, totalMs: number, extra: Partial<PodStart> = {}): PodStart {
  const begin = clock.ms - totalMs;
  const third = totalMs / 3;
  return podStart(uid, begin, [phase('sandbox', 0, third), phase('create', third, 2 * third), phase('start', 2 * third, totalMs)], extra);
}

const uids = (starts: readonly KeptPodStart[]): string[] => starts.map((s) => s.uid);

describe('pod start store', () => {
  test('keeps the last `keep` and evicts the oldest; never holds more than keep + keepSlowest', () => {
    const clock = new Clock();
    const store = new PodStartStore({ keep: 3, keepSlowest: 2, now: clock.now });
    for (let i = 1; i <= 50; i++) {
      clock.ms += 1000;
      store.add(simple(`p${i}`, clock, i === 7 ? 90_000 : 100 + i));
      expect(store.size).toBeLessThanOrEqual(5);
    }
    expect(uids(store.query({ sort: 'newest', limit: 10 }).starts)).toEqual(['p50', 'p49', 'p48', 'p7']);
    // The slowest are kept besides: p7 long after it left the last three.
    expect(uids(store.query({ sort: 'slowest', limit: 2 }).starts)).toEqual(['p7', 'p50']);
    expect(store.query({ sort: 'newest', limit: 2 })).toMatchObject({ matched: 4 });
  });

  test('the slowest are those of the last 24 hours', () => {
    const clock = new Clock();
    const store = new PodStartStore({ keep: 2, keepSlowest: 2, now: clock.now });
    store.add(simple('old-slow', clock, 120_000));
    clock.ms += 23 * HOUR;
    store.add(simple('recent-slow', clock, 60_000));
    for (let i = 0; i < 3; i++) store.add(simple(`fast${i}`, clock, 500));
    expect(uids(store.query({ sort: 'slowest', limit: 10 }).starts)).toEqual(['old-slow', 'recent-slow', 'fast2', 'fast1']);
    clock.ms += 2 * HOUR;
    expect(uids(store.query({ sort: 'slowest', limit: 10 }).starts)).toEqual(['recent-slow', 'fast2', 'fast1']);
    // A later fast start takes no place among the slowest that are still of the day.
    store.add(simple('fast3', clock, 400));
    expect(uids(store.query({ sort: 'slowest', limit: 10 }).starts)).toEqual(['recent-slow', 'fast2', 'fast3']);
  });

  test("the node's p50/p90/p99 are of the successful starts of the last hour (nearest rank)", () => {
    const clock = new Clock();
    const store = new PodStartStore({ keep: 500, keepSlowest: 50, now: clock.now });
    expect(store.lastHour()).toEqual({ count: 0 });
    store.add(simple('before', clock, 999_000));
    clock.ms += HOUR + 1;
    for (let i = 1; i <= 100; i++) store.add(simple(`p${i}`, clock, i * 10));
    store.add(simple('failed', clock, 500_000, { status: 'failed', code: 2 }));
    expect(store.lastHour()).toEqual({ count: 100, p50Ms: 500, p90Ms: 900, p99Ms: 990 });
    clock.ms += HOUR;
    expect(store.lastHour()).toEqual({ count: 0 });
  });

  test('filters by namespace, minimum duration and finish time; sorts newest or slowest first; limits', () => {
    const clock = new Clock();
    const store = new PodStartStore({ keep: 10, keepSlowest: 5, now: clock.now });
    store.add(simple('a', clock, 3000, { namespace: 'shop' }));
    clock.ms += 60_000;
    store.add(simple('b', clock, 8000, { namespace: 'shop' }));
    clock.ms += 60_000;
    store.add(simple('c', clock, 1000, { namespace: 'kube-system' }));
    expect(uids(store.query({ sort: 'newest', limit: 10, namespace: 'shop' }).starts)).toEqual(['b', 'a']);
    expect(uids(store.query({ sort: 'newest', limit: 10, minMs: 2000 }).starts)).toEqual(['b', 'a']);
    expect(uids(store.query({ sort: 'newest', limit: 10, sinceMs: clock.ms - 90_000 }).starts)).toEqual(['c', 'b']);
    expect(uids(store.query({ sort: 'slowest', limit: 2 }).starts)).toEqual(['b', 'a']);
    expect(store.namespaces()).toEqual(['kube-system', 'shop']);
  });

  test("gaps are kubelet's time between calls; the dominant part is the one that took longest", () => {
    const clock = new Clock();
    const store = new PodStartStore({ keep: 5, keepSlowest: 5, now: clock.now });
    const kept = store.add(
      podStart('u', T0, [
        phase('sandbox', 0, 1000),
        phase('pull', 1500, 9500, { detail: 'nginx:1.27', image: 'nginx:1.27' }),
        phase('create', 9600, 9800, { detail: 'app', image: 'docker.io/library/nginx:1.27' }),
        phase('create', 9800, 10_000, { detail: 'sidecar', image: 'envoy:1' }),
        phase('start', 10_000, 10_100, { detail: 'app' }),
        phase('start', 12_100, 12_300, { detail: 'sidecar' }),
      ]),
    );
    expect(kept.gaps).toEqual([
      { offsetMs: 1000, durationMs: 500 },
      { offsetMs: 9500, durationMs: 100 },
      { offsetMs: 10_100, durationMs: 2000 },
    ]);
    expect(kept.totals).toEqual({ sandbox: 1000, pull: 8000, create: 400, start: 300, kubelet: 2600 });
    expect(kept.dominant).toBe('pull');
    // The app's image was pulled in this start (however it was written); the sidecar's was already on the node.
    expect(kept.phases.filter((p) => p.phase === 'create').map((p) => [p.container, p.imagePresent])).toEqual([
      ['app', false],
      ['sidecar', true],
    ]);
  });

  test('each pod start is cut to a bounded shape: strings, messages and phases', () => {
    const clock = new Clock();
    const store = new PodStartStore({ keep: 5, keepSlowest: 5, now: clock.now });
    const long = 'x'.repeat(10_000);
    const phases = Array.from({ length: 128 }, (_, i) =>
      phase(i === 0 ? 'sandbox' : 'create', i * 10, i * 10 + 5, { detail: long, image: long, code: 2, message: long }),
    );
    const kept = store.add(podStart(long, T0, phases, { name: long, namespace: long, status: 'failed', code: 2, phasesDropped: 3 }));
    expect(kept.phases).toHaveLength(MAX_KEPT_PHASES);
    expect(kept.phasesDropped).toBe(3 + 128 - MAX_KEPT_PHASES);
    expect(kept.uid.length).toBeLessThanOrEqual(MAX_TEXT);
    expect(kept.name?.length).toBeLessThanOrEqual(MAX_TEXT);
    expect(kept.message?.length).toBeLessThanOrEqual(MAX_MESSAGE);
    for (const p of kept.phases) {
      expect((p.container ?? '').length).toBeLessThanOrEqual(MAX_TEXT);
      expect(p.image?.length).toBeLessThanOrEqual(MAX_TEXT);
      expect(p.message?.length).toBeLessThanOrEqual(MAX_MESSAGE);
    }
    // Whatever comes in, one kept pod start stays within a fixed size (docs/pod-starts.md states it).
    expect(JSON.stringify(kept).length).toBeLessThan(48 * 1024);
  });
});
