import type { Registry } from 'prom-client';
import type { AdminRoute } from '../admin/admin-server';
import { podsPage } from '../admin/pods-page';
import type { Logger } from '../log';
import { observerFaultReporter } from '../metrics/observer-faults';
import type { PodStartsConfig } from './pod-start-config';
import { PodStartFeed } from './pod-start-feed';
import { PodStartStore } from './pod-start-store';
import { podStartsApi } from './pod-starts-api';

/** The proxy's pod starts: the feed every generation's chain is watched by, and the store the admin page reads. */
export interface PodStarts {
  readonly feed: PodStartFeed;
  readonly store: PodStartStore | undefined;
  /** `/pods` and `/api/pods` for the admin listener. */
  readonly routes: ReadonlyMap<string, AdminRoute>;
}

/** `interceptor` label of the feed's faults in `cri_proxy_observer_faults_total`. */
const FAULT_LABEL = 'pod-starts';

export function createPodStarts(config: PodStartsConfig, registry: Registry, log: Logger): PodStarts {
  const store = config.enabled ? new PodStartStore({ keep: config.keep, keepSlowest: config.keepSlowest }) : undefined;
  const onFault = observerFaultReporter(registry, FAULT_LABEL, log, 'pod start tracking skipped part of a call');
  const feed = new PodStartFeed({ settleMs: config.settleMs, maxStarting: config.maxStarting, ttlMs: config.ttlMs, store, onFault });
  const off = (): { status: number; headers: Record<string, string>; body: string } => ({
    status: 404,
    headers: { 'content-type': 'text/plain; charset=utf-8' },
    body: 'pod starts are not kept (podStarts.enabled: false)\n',
  });
  const routes = new Map<string, AdminRoute>(
    store === undefined
      ? [
          ['/pods', off],
          ['/api/pods', off],
        ]
      : [
          ['/pods', podsPage],
          ['/api/pods', podStartsApi(store)],
        ],
  );
  return { feed, store, routes };
}
