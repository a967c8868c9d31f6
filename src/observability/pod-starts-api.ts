import type { AdminResponse } from '../admin/admin-server';
import { errorMessage } from '../errors';
import { grpcCodeName } from '../metrics/registry';
import { parseDuration } from './duration';
import type { KeptPhase, KeptPodStart, Percentiles, PodStartQuery, PodStartStore } from './pod-start-store';

/*
 * `GET /api/pods`: the kept pod starts as JSON, the schema documented in docs/pod-starts.md. The page, the
 * `cri-proxy pods` command and scripts all read this one view.
 */

export const DEFAULT_LIMIT = 100;
export const MAX_LIMIT = 5000;

export interface PhaseView extends Omit<KeptPhase, 'code'> {
  readonly code: string;
}

/** A kept pod start as the API shows it: its times as ISO moments, its codes by name. */
export interface PodStartView extends Omit<KeptPodStart, 'startMs' | 'endMs' | 'code' | 'phases'> {
  readonly startedAt: string;
  readonly endedAt: string;
  readonly code: string;
  readonly phases: readonly PhaseView[];
}

export interface PodStartsAnswer {
  readonly generatedAt: string;
  readonly sort: PodStartQuery['sort'];
  readonly keep: number;
  readonly keepSlowest: number;
  /** Pod starts the filters matched; `podStarts` holds the first `limit` of them. */
  readonly matched: number;
  /** The node's successful pod starts that finished in the last hour. */
  readonly lastHour: Percentiles;
  readonly namespaces: readonly string[];
  readonly podStarts: readonly PodStartView[];
}

/** The query parameters of `/api/pods` (and of the page), checked; throws with the parameter's name. */
export function parsePodStartQuery(params: URLSearchParams, now: number): PodStartQuery {
  const sort = params.get('sort') ?? 'newest';
  if (sort !== 'newest' && sort !== 'slowest') throw new Error(`sort: "${sort}" must be newest or slowest`);
  const limitText = params.get('limit');
  const limit = limitText === null || limitText === '' ? DEFAULT_LIMIT : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT)
    throw new Error(`limit: "${limitText}" must be a whole number from 1 to ${MAX_LIMIT}`);
  const namespace = params.get('namespace') ?? '';
  return {
    sort,
    limit,
    namespace: namespace === '' ? undefined : namespace,
    minMs: durationOf('min', params.get('min')),
    sinceMs: since(params.get('since'), now),
  };
}

function durationOf(name: string, text: string | null): number | undefined {
  if (text === null || text === '') return undefined;
  try {
    return parseDuration(text);
  } catch (err) {
    throw new Error(`${name}: ${errorMessage(err)}`, { cause: err });
  }
}

/** `since` is a duration back from now (`10m`) or a moment (`2025-01-31T12:00:00Z`). */
function since(text: string | null, now: number): number | undefined {
  if (text !== null && /^\d{4}-\d\d-\d\dT/.test(text)) {
    const at = Date.parse(text);
    if (Number.isNaN(at)) throw new Error(`since: "${text}" is not a valid time`);
    return at;
  }
  const back = durationOf('since', text);
  return back === undefined ? undefined : now - back;
}

/** Milliseconds to the microsecond: more digits would only be noise. */
const ms = (value: number): number => Math.round(value * 1000) / 1000;

export function podStartView(kept: KeptPodStart): PodStartView {
  const { seq, uid, name, namespace, sandboxId, runtimeHandler, backend, message, traceId } = kept;
  const totals = Object.fromEntries(Object.entries(kept.totals).map(([part, value]) => [part, ms(value)])) as PodStartView['totals'];
  return {
    seq,
    uid,
    ...(name === undefined ? {} : { name }),
    ...(namespace === undefined ? {} : { namespace }),
    ...(sandboxId === undefined ? {} : { sandboxId }),
    ...(runtimeHandler === undefined ? {} : { runtimeHandler }),
    ...(backend === undefined ? {} : { backend }),
    startedAt: new Date(kept.startMs).toISOString(),
    endedAt: new Date(kept.endMs).toISOString(),
    totalMs: ms(kept.totalMs),
    status: kept.status,
    code: grpcCodeName(kept.code),
    ...(message === undefined ? {} : { message }),
    containers: kept.containers,
    ...(traceId === undefined ? {} : { traceId }),
    dominant: kept.dominant,
    totals,
    phases: kept.phases.map((p) => ({ ...p, offsetMs: ms(p.offsetMs), durationMs: ms(p.durationMs), code: grpcCodeName(p.code) })),
    gaps: kept.gaps.map((g) => ({ offsetMs: ms(g.offsetMs), durationMs: ms(g.durationMs) })),
    phasesDropped: kept.phasesDropped,
  };
}

function rounded(p: Percentiles): Percentiles {
  const { count, p50Ms, p90Ms, p99Ms } = p;
  return p50Ms === undefined || p90Ms === undefined || p99Ms === undefined
    ? { count }
    : { count, p50Ms: ms(p50Ms), p90Ms: ms(p90Ms), p99Ms: ms(p99Ms) };
}

export function podStartsAnswer(store: PodStartStore, query: PodStartQuery, now: number): PodStartsAnswer {
  const { starts, matched } = store.query(query);
  return {
    generatedAt: new Date(now).toISOString(),
    sort: query.sort,
    ...store.limits,
    matched,
    lastHour: rounded(store.lastHour()),
    namespaces: store.namespaces(),
    podStarts: starts.map(podStartView),
  };
}

/** The `/api/pods` route. */
export function podStartsApi(store: PodStartStore, now: () => number = Date.now): (url: URL) => AdminResponse {
  return (url) => {
    const at = now();
    let query: PodStartQuery;
    try {
      query = parsePodStartQuery(url.searchParams, at);
    } catch (err) {
      return json(400, { error: errorMessage(err) });
    }
    return json(200, podStartsAnswer(store, query, at));
  };
}

function json(status: number, body: unknown): AdminResponse {
  return {
    status,
    headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' },
    body: JSON.stringify(body),
  };
}
