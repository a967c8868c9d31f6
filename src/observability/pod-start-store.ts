import { parseImageReference } from '../policies/image-reference';
import { podStartPhaseNames, type PodStart, type PodStartPhaseName } from './pod-start-types';

/*
 * The pod starts the node's page and API show, kept in memory and bounded: the last `keep`, and the slowest
 * `keepSlowest` of the last 24 hours. Each is cut to a fixed shape when it comes in (strings, phases), so the
 * store's memory is bounded by its counts (docs/pod-starts.md states the figures).
 */

/** Longest text kept of a name, image or uid; of an error message. */
export const MAX_TEXT = 256;
export const MAX_MESSAGE = 512;
/** Phases kept per pod start; the rest are counted in `phasesDropped`. */
export const MAX_KEPT_PHASES = 32;
const DAY_MS = 24 * 60 * 60 * 1000;
const HOUR_MS = 60 * 60 * 1000;
/** Durations of the last hour kept for the node's percentiles, at most (far beyond what a node starts). */
const HOUR_SAMPLES_MAX = 4096;

/** What a pod start spent its time on: its phases, and kubelet's own time between them. */
export type PodStartPart = PodStartPhaseName | 'kubelet';
export const podStartParts: readonly PodStartPart[] = [...podStartPhaseNames, 'kubelet'];

export interface KeptPhase {
  readonly phase: PodStartPhaseName;
  /** From the pod start's beginning to the call's arrival, and the call's own time, in ms. */
  readonly offsetMs: number;
  readonly durationMs: number;
  /** The container (create, start). */
  readonly container?: string;
  /** The image pulled (pull), or the container's image (create). */
  readonly image?: string;
  /** Size of a pulled image, when the runtime reported it. */
  readonly bytes?: number;
  /** create: no pull of the container's image was part of this start (kubelet found it on the node). */
  readonly imagePresent?: boolean;
  readonly code: number;
  readonly message?: string;
}

export interface Gap {
  readonly offsetMs: number;
  readonly durationMs: number;
}

export interface KeptPodStart {
  /** Unique in this process, increasing in the order starts finished. */
  readonly seq: number;
  readonly uid: string;
  readonly name?: string;
  readonly namespace?: string;
  readonly sandboxId?: string;
  readonly runtimeHandler?: string;
  readonly backend?: string;
  /** Epoch ms of RunPodSandbox's arrival and of the last StartContainer's answer. */
  readonly startMs: number;
  readonly endMs: number;
  readonly totalMs: number;
  readonly status: 'ok' | 'failed';
  readonly code: number;
  readonly message?: string;
  readonly containers: number;
  readonly traceId?: string;
  readonly phases: readonly KeptPhase[];
  readonly phasesDropped: number;
  /** Summed time per part; `kubelet` is the time no call covered. */
  readonly totals: Readonly<Record<PodStartPart, number>>;
  /** The stretches no call covered (kubelet's own time), in order. */
  readonly gaps: readonly Gap[];
  /** The part that took longest. */
  readonly dominant: PodStartPart;
}

/** What the feed knows of a pod start beyond the tracker's record. */
export interface PodStartExtras {
  readonly traceId?: string | undefined;
  /** Sizes of pulled images by phase index (in `start.phases`). */
  readonly bytes?: ReadonlyMap<number, number>;
}

export interface PodStartQuery {
  readonly namespace?: string | undefined;
  readonly minMs?: number | undefined;
  /** Epoch ms: only starts that finished at or after it. */
  readonly sinceMs?: number | undefined;
  readonly sort: 'newest' | 'slowest';
  readonly limit: number;
}

export interface Percentiles {
  /** Successful pod starts in the window. */
  readonly count: number;
  readonly p50Ms?: number;
  readonly p90Ms?: number;
  readonly p99Ms?: number;
}

export interface PodStartStoreOptions {
  readonly keep: number;
  readonly keepSlowest: number;
  /** Wall-clock epoch ms (tests inject theirs). */
  readonly now?: () => number;
}

export class PodStartStore {
  /** The last `keep`, as a ring: `recent[next]` is the oldest once full. */
  private readonly recent: (KeptPodStart | undefined)[];
  private next = 0;
  /** Slowest first, at most `keepSlowest`, none older than a day. */
  private slowest: KeptPodStart[] = [];
  /** Successful starts of the last hour, oldest first: [end, total]. */
  private readonly hour: [number, number][] = [];
  private seq = 0;
  private readonly now: () => number;

  constructor(private readonly options: PodStartStoreOptions) {
    this.recent = new Array<undefined>(options.keep);
    this.now = options.now ?? Date.now;
  }

  get limits(): { readonly keep: number; readonly keepSlowest: number } {
    return { keep: this.options.keep, keepSlowest: this.options.keepSlowest };
  }

  /** Pod starts held (the slowest that are also among the last counted once). */
  get size(): number {
    return this.all().length;
  }

  add(start: PodStart, extras: PodStartExtras = {}): KeptPodStart {
    const kept = keep(start, extras, ++this.seq);
    this.recent[this.next] = kept;
    this.next = (this.next + 1) % this.recent.length;
    this.rankSlowest(kept);
    if (kept.status === 'ok') {
      this.hour.push([kept.endMs, kept.totalMs]);
      if (this.hour.length > HOUR_SAMPLES_MAX) this.hour.shift();
    }
    return kept;
  }

  query(q: PodStartQuery): { readonly starts: KeptPodStart[]; readonly matched: number } {
    const matching = this.all().filter(
      (s) =>
        (q.namespace === undefined || s.namespace === q.namespace) &&
        (q.minMs === undefined || s.totalMs >= q.minMs) &&
        (q.sinceMs === undefined || s.endMs >= q.sinceMs),
    );
    matching.sort(q.sort === 'slowest' ? (a, b) => b.totalMs - a.totalMs || b.seq - a.seq : (a, b) => b.seq - a.seq);
    return { starts: matching.slice(0, q.limit), matched: matching.length };
  }

  /** Namespaces of the starts held, sorted. */
  namespaces(): string[] {
    return [...new Set(this.all().flatMap((s) => (s.namespace === undefined ? [] : [s.namespace])))].sort();
  }

  /** p50/p90/p99 (nearest rank) of the successful starts that finished in the last hour. */
  lastHour(): Percentiles {
    const since = this.now() - HOUR_MS;
    while (this.hour.length > 0 && (this.hour[0] as [number, number])[0] <= since) this.hour.shift();
    const sorted = this.hour.map(([, total]) => total).sort((a, b) => a - b);
    if (sorted.length === 0) return { count: 0 };
    const rank = (p: number): number => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
    return { count: sorted.length, p50Ms: rank(50), p90Ms: rank(90), p99Ms: rank(99) };
  }

  private rankSlowest(kept: KeptPodStart): void {
    const since = this.now() - DAY_MS;
    this.slowest = this.slowest.filter((s) => s.endMs >= since);
    const limit = this.options.keepSlowest;
    if (limit === 0) return;
    if (this.slowest.length >= limit && kept.totalMs <= (this.slowest[limit - 1] as KeptPodStart).totalMs) return;
    const at = this.slowest.findIndex((s) => s.totalMs < kept.totalMs);
    this.slowest.splice(at === -1 ? this.slowest.length : at, 0, kept);
    if (this.slowest.length > limit) this.slowest.length = limit;
  }

  private all(): KeptPodStart[] {
    const since = this.now() - DAY_MS;
    const out = new Map<number, KeptPodStart>();
    for (const s of this.recent) if (s !== undefined) out.set(s.seq, s);
    for (const s of this.slowest) if (s.endMs >= since) out.set(s.seq, s);
    return [...out.values()];
  }
}

/** The tracker's record cut to the kept shape, with the parts' totals and the dominant part worked out once. */
function keep(start: PodStart, extras: PodStartExtras, seq: number): KeptPodStart {
  const origin = start.start.epochMs;
  const pulled = new Set(start.phases.flatMap((p) => (p.phase === 'pull' && p.code === 0 && p.image ? [imageKey(p.image)] : [])));
  const phases = start.phases.slice(0, MAX_KEPT_PHASES).map((p, i): KeptPhase => {
    const bytes = extras.bytes?.get(i);
    return {
      phase: p.phase,
      offsetMs: Math.max(0, p.start.epochMs - origin),
      durationMs: p.durationMs,
      ...text('container', p.phase === 'create' || p.phase === 'start' ? p.detail : undefined),
      ...text('image', p.image),
      ...(bytes === undefined ? {} : { bytes }),
      ...(p.phase === 'create' && p.image !== undefined ? { imagePresent: !pulled.has(imageKey(p.image)) } : {}),
      code: p.code,
      ...text('message', p.message, MAX_MESSAGE),
    };
  });
  const { totals, gaps } = timeline(start);
  const failed = start.status === 'failed' ? [...start.phases].reverse().find((p) => p.code === start.code && p.code !== 0) : undefined;
  return {
    seq,
    uid: cut(start.uid),
    ...text('name', start.name),
    ...text('namespace', start.namespace),
    ...text('sandboxId', start.sandboxId),
    ...text('runtimeHandler', start.runtimeHandler),
    ...text('backend', start.backend),
    startMs: origin,
    endMs: start.end.epochMs,
    totalMs: start.totalMs,
    status: start.status,
    code: start.code,
    ...text('message', failed?.message, MAX_MESSAGE),
    containers: start.containers,
    ...text('traceId', extras.traceId),
    phases,
    phasesDropped: start.phasesDropped + Math.max(0, start.phases.length - MAX_KEPT_PHASES),
    totals,
    gaps,
    dominant: podStartParts.reduce((a, b) => (totals[b] > totals[a] ? b : a)),
  };
}

/**
 * Per part, the summed time, and the gaps: stretches of the start no call covered (calls may overlap), which are
 * kubelet's own time. Gaps under a microsecond are rounding, not time.
 */
function timeline(start: PodStart): { totals: Record<PodStartPart, number>; gaps: Gap[] } {
  const spans = start.phases
    .map((p) => [p.start.epochMs - start.start.epochMs, p.start.epochMs - start.start.epochMs + p.durationMs] as const)
    .sort((a, b) => a[0] - b[0]);
  const gaps: Gap[] = [];
  let reach = 0;
  for (const [from, to] of [...spans, [start.totalMs, start.totalMs] as const]) {
    const until = Math.min(from, start.totalMs);
    if (until - reach > 0.001) gaps.push({ offsetMs: reach, durationMs: until - reach });
    reach = Math.max(reach, to);
  }
  const kubelet = gaps.reduce((sum, g) => sum + g.durationMs, 0);
  return { totals: { ...start.phaseTotals, kubelet }, gaps };
}

/** One name for an image however it was written (`nginx:1` and `docker.io/library/nginx:1` alike). */
function imageKey(image: string): string {
  const parsed = parseImageReference(image);
  return parsed.ok ? parsed.ref.normalized : image;
}

function cut(value: string, max = MAX_TEXT): string {
  return value.length <= max ? value : `${value.slice(0, max - 1)}…`;
}

function text<K extends string>(key: K, value: string | undefined, max = MAX_TEXT): { [P in K]?: string } {
  return (value === undefined || value === '' ? {} : { [key]: cut(value, max) }) as { [P in K]?: string };
}
