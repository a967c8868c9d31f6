import type { PodStart, PodStartPhaseName, TraceContextRef } from '../chain/pod-start-records';
import type { Scheduler } from '../scheduler';

// The records a PodStartTracker reports (chain/pod-start-records.ts: interceptors hear of them), and its options.
export type { PodStart, PodStartPhase, PodStartPhaseName, TraceContextRef } from '../chain/pod-start-records';

export const podStartPhaseNames: readonly PodStartPhaseName[] = ['sandbox', 'pull', 'create', 'start'];

export type PodDropReason = 'evicted' | 'expired' | 'replaced';

export interface PodStartTrackerOptions {
  readonly onComplete: (podStart: PodStart) => void;
  /** A pod forgotten before it finished starting. */
  readonly onDrop?: (reason: PodDropReason, uid: string) => void;
  /** Quiet period after a StartContainer before the pod counts as started (default 3000). */
  readonly settleMs?: number;
  /** Pods followed at once; the least recently active is dropped beyond this (default 1000). */
  readonly maxPods?: number;
  /** A pod with no new phase for this long is dropped (default 10 min). */
  readonly ttlMs?: number;
  /** Phases (and containers) kept per pod (default 128). */
  readonly maxPhases?: number;
  /** Time for the quiet period and expiry (real time by default; tests drive their own). */
  readonly scheduler?: Scheduler;
}

/** Facts about a finished call that its context does not hold; all optional. */
export interface ObservedCall {
  /** hrtime when the call started (default `ctx.startedAt`) and ended (default now). */
  readonly startedAt?: bigint;
  readonly endedAt?: bigint;
  /** gRPC status code; default `ctx.outcome.code`, UNKNOWN if unset (next() rejected). */
  readonly code?: number;
  /** Status message of a failed call; default `ctx.outcome.message`. */
  readonly message?: string;
  /** Links besides the caller's `traceparent` (e.g. the proxy's own span of the call). */
  readonly links?: readonly TraceContextRef[];
}

export interface PodStartStats {
  readonly active: number;
  readonly completed: number;
  readonly failed: number;
  readonly dropped: number;
}
