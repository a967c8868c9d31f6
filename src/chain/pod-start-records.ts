/**
 * The pod start records the proxy tells interceptors of (observability/pod-start-feed.ts follows pod starts once
 * for the whole proxy; tracing and metrics subscribe through InterceptorDeps.podStarts). Plain values, free of any
 * telemetry library.
 */

/** The phases of a pod start, each one CRI method (observability/pod-start-phases.ts says which). */
export type PodStartPhaseName = 'sandbox' | 'pull' | 'create' | 'start';

/** A moment as both wall-clock time (for exporters and logs) and monotonic time (for exact durations). */
export interface Instant {
  /** Milliseconds since the epoch, with sub-millisecond precision. */
  readonly epochMs: number;
  /** `process.hrtime.bigint()` at that moment. */
  readonly hrtime: bigint;
}

/** A W3C trace context as received in a call's metadata (the caller's span, typically kubelet's). */
export interface TraceContextRef {
  readonly traceparent: string;
  readonly tracestate?: string;
}

export interface PodStartPhase {
  readonly phase: PodStartPhaseName;
  /** The image (pull), the container name (create, start), or undefined (sandbox). */
  readonly detail: string | undefined;
  /** The image pulled (pull) or the container's image (create). */
  readonly image: string | undefined;
  readonly start: Instant;
  readonly end: Instant;
  readonly durationMs: number;
  /** The call's gRPC status code. */
  readonly code: number;
  /** The status message of a call that failed. */
  readonly message: string | undefined;
  readonly links: readonly TraceContextRef[];
}

export interface PodStart {
  readonly uid: string;
  readonly name: string | undefined;
  readonly namespace: string | undefined;
  readonly sandboxId: string | undefined;
  readonly runtimeHandler: string | undefined;
  /** The backend RunPodSandbox went to. */
  readonly backend: string | undefined;
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

/** What a listener adds to a pod start it was told of: the pod start trace it made. */
export interface PodStartAnnotations {
  readonly traceId?: string;
}

export type PodStartListener = (start: PodStart) => PodStartAnnotations | undefined;

/** Where an interceptor hears of finished pod starts; `subscribe` returns the unsubscribe function. */
export interface PodStartSubscriptions {
  subscribe(listener: PodStartListener): () => void;
}
