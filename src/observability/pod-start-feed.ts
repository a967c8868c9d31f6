import { GrpcStatus, ProxyError, errorMessage } from '../errors';
import type { CallObserver, RunChain } from '../chain/chain';
import type { CallContext, MethodInfo } from '../chain/types';
import type { Scheduler } from '../scheduler';
import type { PodStartsConfig } from './pod-start-config';
import type { PodStartStore } from './pod-start-store';
import type { PodStartListener, PodStartSubscriptions } from '../chain/pod-start-records';
import { PodStartTracker, type PodStart, type PodStartPhase, type TraceContextRef } from './pod-start-tracker';
import { imageSizeAnswers, podStartPhases } from './pod-start-phases';
import { PulledImageSizes } from './pulled-image-sizes';

/** The listeners of one configuration generation: only the current generation's hear of pod starts. */
export class PodStartSubscribers implements PodStartSubscriptions {
  readonly listeners = new Set<PodStartListener>();

  /** Returns the unsubscribe function. */
  subscribe(listener: PodStartListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

export interface PodStartFeedOptions extends Pick<PodStartsConfig, 'settleMs' | 'maxStarting' | 'ttlMs'> {
  /** Where finished pod starts are kept for the admin page; none when `podStarts.enabled` is false. */
  readonly store?: PodStartStore | undefined;
  readonly scheduler?: Scheduler;
  /** A fault while observing; never changes a call's outcome. */
  readonly onFault?: (error: unknown) => void;
}

const LINKS_KEY = Symbol('pod-start-feed.links');

/** A call as the proxy runs it: its context, and a read of its request bytes that holds no failure against the call. */
export interface WatchedCall extends CallContext {
  observeRequestBytes(): Promise<Buffer | undefined>;
}

/**
 * Follows pod starts for the whole proxy, from outside the interceptor chain: the chain's runner of each pod
 * start method (RunPodSandbox, PullImage, CreateContainer, StartContainer) is wrapped once, and the calls are
 * read by one PodStartTracker, on the wire (nothing is decoded). Other methods' runners are left alone, but for
 * ImageStatus while a pulled image waits for its size. Finished starts go to the current generation's listeners
 * (tracing, metrics), then to the store.
 */
export class PodStartFeed {
  private readonly tracker: PodStartTracker;
  private readonly sizes = new PulledImageSizes<PodStartPhase>();
  private readonly bytes = new WeakMap<PodStartPhase, number>();
  private current: PodStartSubscribers | undefined;
  private readonly fault: (error: unknown) => void;

  constructor(private readonly options: PodStartFeedOptions) {
    this.fault = options.onFault ?? (() => undefined);
    this.tracker = new PodStartTracker({
      settleMs: options.settleMs,
      maxPods: options.maxStarting,
      ttlMs: options.ttlMs,
      ...(options.scheduler ? { scheduler: options.scheduler } : {}),
      onComplete: (start) => this.finished(start),
    });
  }

  /** Links a pod start phase to a span of its call (tracing adds its own call span); before the call settles. */
  static link(ctx: CallContext, ref: TraceContextRef): void {
    const links = ctx.state.get(LINKS_KEY) as TraceContextRef[] | undefined;
    if (links === undefined) ctx.state.set(LINKS_KEY, [ref]);
    else links.push(ref);
  }

  /** The observer of one generation's chain: it watches while that generation listens or pod starts are kept. */
  observer<C extends WatchedCall>(subscribers: PodStartSubscribers): CallObserver<C> {
    return {
      around: (method) => (this.options.store !== undefined || subscribers.listeners.size > 0 ? this.around(method) : undefined),
    };
  }

  /** Makes a generation's listeners the ones told of pod starts from now on. */
  use(subscribers: PodStartSubscribers): void {
    this.current = subscribers;
  }

  get stats(): PodStartTracker['stats'] {
    return this.tracker.stats;
  }

  /** Reports the pods whose containers have started, forgets the rest, stops the timers. */
  close(): void {
    this.tracker.close();
  }

  private around<C extends WatchedCall>(method: MethodInfo): ((call: C, run: RunChain<C>) => Promise<void>) | undefined {
    if (podStartPhases.of(method) !== undefined) return (call, run) => this.phaseCall(call, run);
    // The common ImageStatus call is passed straight on: only one that may carry a pulled image's size is read.
    if (imageSizeAnswers.of(method) === true) return (call, run) => (this.sizes.waiting ? this.statusCall(call, run) : run(call));
    return undefined;
  }

  private async phaseCall<C extends WatchedCall>(call: C, run: RunChain<C>): Promise<void> {
    await this.tracker.prepare(call, () => call.observeRequestBytes());
    try {
      await run(call);
    } catch (err) {
      this.observe(call, { error: err });
      throw err;
    }
    this.observe(call, undefined);
  }

  private observe(call: WatchedCall, failure: { error: unknown } | undefined): void {
    try {
      const error = failure?.error;
      const code =
        failure === undefined
          ? (call.outcome?.code ?? GrpcStatus.UNKNOWN)
          : error instanceof ProxyError
            ? error.grpcStatus
            : GrpcStatus.INTERNAL;
      const message = failure === undefined ? call.outcome?.message : errorMessage(error);
      const links = call.state.get(LINKS_KEY) as TraceContextRef[] | undefined;
      const phase = this.tracker.observe(call, { code, ...(message === undefined ? {} : { message }), ...(links ? { links } : {}) });
      if (phase?.phase === 'pull' && code === GrpcStatus.OK) this.sizes.expect(call.responseBytes(), phase);
    } catch (err) {
      this.fault(err);
    }
  }

  private async statusCall<C extends WatchedCall>(call: C, run: RunChain<C>): Promise<void> {
    await run(call);
    try {
      if (call.outcome?.code !== GrpcStatus.OK) return;
      const match = this.sizes.match(call.responseBytes());
      if (match?.bytes !== undefined) this.bytes.set(match.value, match.bytes);
    } catch (err) {
      this.fault(err);
    }
  }

  private finished(start: PodStart): void {
    let traceId: string | undefined;
    for (const listener of this.current?.listeners ?? []) {
      try {
        traceId ??= listener(start)?.traceId;
      } catch (err) {
        this.fault(err);
      }
    }
    const store = this.options.store;
    if (store === undefined) return;
    try {
      const bytes = new Map<number, number>();
      start.phases.forEach((phase, i) => {
        const size = this.bytes.get(phase);
        if (size !== undefined) bytes.set(i, size);
      });
      store.add(start, { traceId, bytes });
    } catch (err) {
      this.fault(err);
    }
  }
}
