import type { PodStartPhaseName } from './pod-start-phases';
import type { Scheduler } from '../scheduler';
import type { Instant } from './clock';

export type { PodStartPhaseName } from './pod-start-phases';

// The records a PodStartTracker reports, and its options; free of any telemetry library.

export const podStartPhaseNames: readonly PodStartPhaseName[] = ['sandbox', 'pull', 'create', 'start'];

/** A W3C trace context as received in a call's metadata (the caller's span, typically kubelet's). */
export interface TraceContextRef {
  readonly traceparent: string;
  readonly tracestate?: string;
}

export interface PodStartPhase {
  readonly phase: PodStartPhaseName;
  /** The image (pull), the container name (create, start), or undefined (sandbox). */
  readonly detail: string | undefined;
  readonly start: Instant;
  readonly end: Instant;
  readonly durationMs: number;
  /** The call's gRPC status code. */
  readonly code: number;
  readonly links: readonly TraceContextRef[];
}

export interface PodStart {
  readonly uid: string;
  readonly name: string | undefined;
  readonly namespace: string | undefined;
  readonly sandboxId: string | undefined;
  readonly runtimeHandler: string | undefined;
  /** When RunPodSandbox arrived. */
  readonly start: Instant;
  /** When the last StartContainer answered (or a failed RunPodSandbox did). */
  readonly end: Instant;
  readonly totalMs: number;
  /** 'failed' when RunPodSandbox failed or the last StartContainer did; `code` is that call's gRPC code. */
  readonly status: 'ok' | 'failed';
  readonly code: number;
  /** In call order, at most `maxPhases` (the rest are counted in `phasesDropped`). */
  readonly phases: readonly PodStartPhase[];
  readonly phasesDropped: number;
  /** Sum of durations per phase kind, in ms. */
  readonly phaseTotals: Readonly<Record<PodStartPhaseName, number>>;
  /** Containers started. */
  readonly containers: number;
}

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
  /** Links besides the caller's `traceparent` (e.g. the proxy's own span of the call). */
  readonly links?: readonly TraceContextRef[];
}

export interface PodStartStats {
  readonly active: number;
  readonly completed: number;
  readonly failed: number;
  readonly dropped: number;
}
