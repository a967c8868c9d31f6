import { PodStartFeed, PodStartSubscribers } from '../../src/observability/pod-start-feed';
import { PodStartStore } from '../../src/observability/pod-start-store';
import type { Scheduler } from '../../src/scheduler';

export interface TestPodStarts {
  readonly feed: PodStartFeed;
  readonly subscribers: PodStartSubscribers;
  readonly store: PodStartStore | undefined;
  readonly faults: unknown[];
}

/** A pod-start feed as the app sets one up (one generation's subscribers in use), for a test proxy's `observer`. */
export function testPodStarts(
  options: {
    settleMs?: number;
    maxStarting?: number;
    store?: boolean;
    keep?: number;
    keepSlowest?: number;
    scheduler?: Scheduler;
    now?: () => number;
  } = {},
): TestPodStarts {
  const faults: unknown[] = [];
  const store =
    options.store === false
      ? undefined
      : new PodStartStore({
          keep: options.keep ?? 500,
          keepSlowest: options.keepSlowest ?? 50,
          ...(options.now ? { now: options.now } : {}),
        });
  const feed = new PodStartFeed({
    settleMs: options.settleMs ?? 50,
    maxStarting: options.maxStarting ?? 1000,
    ttlMs: 600_000,
    store,
    onFault: (err) => faults.push(err),
    ...(options.scheduler ? { scheduler: options.scheduler } : {}),
  });
  const subscribers = new PodStartSubscribers();
  feed.use(subscribers);
  return { feed, subscribers, store, faults };
}
