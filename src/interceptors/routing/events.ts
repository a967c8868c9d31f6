/**
 * GetContainerEvents for several runtimes: one upstream stream per backend, opened while anyone subscribes, each
 * event passed to every subscriber as the runtime sent it. A broken upstream is reopened with exponential
 * back-off while subscribers stay connected. Each subscriber has a bounded buffer; one that falls behind by
 * more is dropped (its stream ends RESOURCE_EXHAUSTED, so kubelet resubscribes and relists) and counted.
 */
import { GrpcStatus, errorMessage } from '../../errors';
import type { Logger } from '../../log';
import type { BackendStatus, StreamBackend } from './backend-call';
import { statusName, type BuiltAnswer } from './fan-out';
import type { RoutingMetrics } from './metrics';

const EVENTS_PATH = '/runtime.v1.RuntimeService/GetContainerEvents';

/** How subscriptions end when the merger closes: UNAVAILABLE, so callers subscribe again (to the next generation). */
const STOPPED: BuiltAnswer = {
  code: GrpcStatus.UNAVAILABLE,
  message: 'cri-proxy: event merging has stopped (shutting down or reconfigured)',
  body: undefined,
};

/** Runs `run` after `ms`; the returned function cancels it. Injected so tests drive time themselves. */
export type Schedule = (run: () => void, ms: number) => () => void;

const realSchedule: Schedule = (run, ms) => {
  const timer = setTimeout(run, ms);
  timer.unref();
  return () => clearTimeout(timer);
};

export interface EventsMergerOptions {
  /** Backend order, the default first. */
  readonly backends: readonly string[];
  readonly stream: StreamBackend;
  readonly reconnectInitialMs: number;
  readonly reconnectMaxMs: number;
  readonly subscriberBufferMessages: number;
  readonly subscriberBufferBytes: number;
  readonly metrics: RoutingMetrics;
  readonly log: Logger;
  readonly schedule?: Schedule;
  /** Milliseconds on any monotonic scale; decides when a stream lived long enough to reset the back-off. */
  readonly now?: () => number;
  /** Sees every event with the backend it came from (ownership learns from it). */
  readonly observe?: (backend: string, message: Buffer) => void;
}

/** One caller's view of the merged events; iterate it, and close it when the caller goes away. */
export interface EventSubscription extends AsyncIterable<Buffer> {
  /** Why the subscription ended (dropped, merger closed, closed by the caller); undefined while it runs. */
  readonly ended: BuiltAnswer | undefined;
  close(): void;
}

class Subscription implements EventSubscription {
  private readonly queue: Buffer[] = [];
  private queuedBytes = 0;
  private waiter: ((result: IteratorResult<Buffer>) => void) | undefined;
  ended: BuiltAnswer | undefined;

  constructor(
    private readonly limits: { readonly messages: number; readonly bytes: number },
    private readonly onEnd: (sub: Subscription, dropped: boolean) => void,
  ) {}

  push(message: Buffer): void {
    if (this.ended !== undefined) return;
    const waiter = this.waiter;
    if (waiter !== undefined) {
      this.waiter = undefined;
      waiter({ done: false, value: message });
      return;
    }
    if (this.queue.length >= this.limits.messages || this.queuedBytes + message.length > this.limits.bytes) {
      const held = `${this.queue.length} events (${this.queuedBytes} bytes)`;
      this.end(
        {
          code: GrpcStatus.RESOURCE_EXHAUSTED,
          message: `cri-proxy: GetContainerEvents subscriber fell behind with ${held} not taken and was dropped; subscribe again and relist`,
          body: undefined,
        },
        true,
      );
      return;
    }
    this.queue.push(message);
    this.queuedBytes += message.length;
  }

  /** Ends the subscription; what was still queued is discarded so the status goes out at once. */
  end(status: BuiltAnswer, dropped = false): void {
    if (this.ended !== undefined) return;
    this.ended = status;
    this.queue.length = 0;
    this.queuedBytes = 0;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.({ done: true, value: undefined });
    this.onEnd(this, dropped);
  }

  close(): void {
    this.end({ code: GrpcStatus.CANCELLED, message: 'cri-proxy: the subscriber went away', body: undefined });
  }

  private next(): Promise<IteratorResult<Buffer>> {
    const message = this.queue.shift();
    if (message !== undefined) {
      this.queuedBytes -= message.length;
      return Promise.resolve({ done: false, value: message });
    }
    if (this.ended !== undefined) return Promise.resolve({ done: true, value: undefined });
    if (this.waiter !== undefined) return Promise.reject(new Error('GetContainerEvents subscription read concurrently'));
    return new Promise((resolve) => (this.waiter = resolve));
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    return {
      next: () => this.next(),
      return: () => {
        this.close();
        return Promise.resolve({ done: true, value: undefined });
      },
    };
  }
}

interface Upstream {
  abort: AbortController | undefined;
  cancelRetry: (() => void) | undefined;
  failures: number;
}

export class EventsMerger {
  private readonly subscribers = new Set<Subscription>();
  private readonly upstreams: Map<string, Upstream>;
  private readonly schedule: Schedule;
  private readonly now: () => number;
  private closed = false;

  constructor(private readonly options: EventsMergerOptions) {
    this.schedule = options.schedule ?? realSchedule;
    this.now = options.now ?? (() => performance.now());
    this.upstreams = new Map(options.backends.map((b) => [b, { abort: undefined, cancelRetry: undefined, failures: 0 }]));
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  subscribe(): EventSubscription {
    const { subscriberBufferMessages: messages, subscriberBufferBytes: bytes, metrics } = this.options;
    const sub = new Subscription({ messages, bytes }, (ended, dropped) => this.unsubscribe(ended, dropped));
    if (this.closed) {
      sub.end(STOPPED);
      return sub;
    }
    this.subscribers.add(sub);
    metrics.eventSubscribers.set(this.subscribers.size);
    if (this.subscribers.size === 1) for (const backend of this.upstreams.keys()) this.open(backend);
    return sub;
  }

  /**
   * One subscriber's merged events, each `send` awaited, until the client leaves (`signal`) or the subscription
   * ends; resolves to the status the client's stream ends with.
   */
  async pipe(signal: AbortSignal, send: (message: Buffer) => Promise<void>): Promise<BuiltAnswer> {
    const subscription = this.subscribe();
    const onAbort = (): void => subscription.close();
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) subscription.close();
    try {
      for await (const message of subscription) await send(message);
    } catch (err) {
      subscription.close();
      return {
        code: GrpcStatus.CANCELLED,
        message: `cri-proxy: GetContainerEvents: sending to the client failed: ${errorMessage(err)}`,
        body: undefined,
      };
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
    return subscription.ended ?? { code: GrpcStatus.OK, message: '', body: undefined };
  }

  /** Ends every subscription and every upstream. */
  close(): void {
    this.closed = true;
    for (const sub of [...this.subscribers]) {
      sub.end(STOPPED);
    }
    this.stopUpstreams();
  }

  private unsubscribe(sub: Subscription, dropped: boolean): void {
    if (!this.subscribers.delete(sub)) return;
    const { metrics, log } = this.options;
    metrics.eventSubscribers.set(this.subscribers.size);
    if (dropped) {
      metrics.eventSubscribersDropped.inc();
      log.warn('GetContainerEvents subscriber dropped: it fell behind', { limitMessages: this.options.subscriberBufferMessages });
    }
    if (this.subscribers.size === 0) this.stopUpstreams();
  }

  private stopUpstreams(): void {
    for (const [backend, upstream] of this.upstreams) {
      upstream.cancelRetry?.();
      upstream.cancelRetry = undefined;
      upstream.abort?.abort();
      upstream.abort = undefined;
      upstream.failures = 0;
      this.options.metrics.eventUpstreamUp.remove({ backend });
    }
  }

  private open(backend: string): void {
    const upstream = this.upstreams.get(backend);
    if (upstream === undefined || upstream.abort !== undefined) return;
    const { stream, metrics, observe } = this.options;
    const abort = new AbortController();
    upstream.abort = abort;
    const openedAt = this.now();
    let received = false;
    metrics.eventUpstreamUp.set({ backend }, 1);
    const onMessage = (message: Buffer): void => {
      received = true;
      try {
        observe?.(backend, message);
      } catch (err) {
        this.options.log.warn('GetContainerEvents observer failed', { backend, error: errorMessage(err) });
      }
      for (const sub of [...this.subscribers]) sub.push(message);
    };
    stream(backend, EVENTS_PATH, Buffer.alloc(0), [], undefined, abort.signal, onMessage)
      .catch((err: unknown): BackendStatus => ({ code: GrpcStatus.UNAVAILABLE, message: errorMessage(err), trailers: [] }))
      .then(
        (status) => {
          // Stopped on purpose: nobody subscribes any more, or the merger closed.
          if (abort.signal.aborted) return;
          upstream.abort = undefined;
          // A stream that worked for a while is a new failure, not the next in a series.
          if (received || this.now() - openedAt >= this.options.reconnectMaxMs) upstream.failures = 0;
          this.retryLater(backend, upstream, status);
        },
        (err: unknown) => {
          this.options.log.error('GetContainerEvents upstream handling failed', { backend, error: errorMessage(err) });
        },
      );
  }

  private retryLater(backend: string, upstream: Upstream, status: BackendStatus): void {
    const { reconnectInitialMs, reconnectMaxMs, metrics, log } = this.options;
    const delay = Math.min(reconnectMaxMs, reconnectInitialMs * 2 ** upstream.failures);
    upstream.failures++;
    metrics.eventUpstreamUp.set({ backend }, 0);
    log.warn('GetContainerEvents stream to backend ended; reconnecting', {
      backend,
      code: statusName(status.code),
      message: status.message,
      retryInMs: delay,
    });
    upstream.cancelRetry = this.schedule(() => {
      upstream.cancelRetry = undefined;
      if (this.closed || this.subscribers.size === 0) return;
      metrics.eventReconnects.inc({ backend });
      this.open(backend);
    }, delay);
  }
}
