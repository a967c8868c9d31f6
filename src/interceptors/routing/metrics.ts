/** Routing's own metrics, in the registry the proxy passes in (they survive config reloads there). */
import type { Counter, Gauge, Registry } from 'prom-client';
import { ensureCounter, ensureGauge } from '../../metrics/registry';
import { METRIC } from '../../metrics/names';

export type OwnedKind = 'sandbox' | 'container' | 'pod';

export interface RoutingMetrics {
  /** New pods (RunPodSandbox, RestorePod) and image pulls placed by the rules; rule "default" when none matched. */
  readonly placements: Counter<'backend' | 'rule'>;
  /** result: hit | miss. */
  readonly lookups: Counter<'kind' | 'result'>;
  /** How misses were settled. result: found | unknown (no backend knows it) | unavailable (could not ask them all). */
  readonly resolutions: Counter<'kind' | 'result'>;
  readonly evictions: Counter<'kind'>;
  readonly entries: Gauge<'kind'>;
  /** Start-up rebuilds per backend. result: ok | failed. */
  readonly rebuilds: Counter<'backend' | 'result'>;
  readonly eventReconnects: Counter<'backend'>;
  /** 1 while the backend's event stream is open, 0 while it waits to reconnect. */
  readonly eventUpstreamUp: Gauge<'backend'>;
  readonly eventSubscribers: Gauge;
  readonly eventSubscribersDropped: Counter;
  /** CreateContainer calls whose image the pod's runtime lacked, by what routing did for kubelet (MissingImageOutcome). */
  readonly missingImages: Counter<'backend' | 'outcome'>;
  /** Merged answers refused for being larger than a client accepts. */
  readonly mergedTooLarge: Counter<'method'>;
  /** 1 while every backend's RuntimeConfig agrees (as last asked), 0 while they differ. */
  readonly runtimeConfigConsistent: Gauge;
}

export function routingMetrics(registry: Registry): RoutingMetrics {
  return {
    placements: ensureCounter(registry, {
      name: METRIC.routingPlacementsTotal,
      help: 'Pods and image pulls placed by the routing rules, by backend and deciding rule ("default" when no rule matched)',
      labelNames: ['backend', 'rule'],
    }),
    lookups: ensureCounter(registry, {
      name: METRIC.routingOwnershipLookupsTotal,
      help: 'Lookups of the backend owning a sandbox, container or pod, by kind and whether the cache knew it (hit, miss)',
      labelNames: ['kind', 'result'],
    }),
    resolutions: ensureCounter(registry, {
      name: METRIC.routingOwnershipResolutionsTotal,
      help: 'Cache misses settled by asking every backend: found, unknown (no backend has it) or unavailable (a backend could not be asked)',
      labelNames: ['kind', 'result'],
    }),
    evictions: ensureCounter(registry, {
      name: METRIC.routingOwnershipEvictionsTotal,
      help: 'Ownership entries dropped because the cache was full (found again on demand)',
      labelNames: ['kind'],
    }),
    entries: ensureGauge(registry, {
      name: METRIC.routingOwnershipEntries,
      help: 'Ownership entries held, by kind',
      labelNames: ['kind'],
    }),
    rebuilds: ensureCounter(registry, {
      name: METRIC.routingOwnershipRebuildsTotal,
      help: "Start-up rebuilds of the ownership cache from a backend's ListPodSandbox and ListContainers, by result (ok, failed)",
      labelNames: ['backend', 'result'],
    }),
    eventReconnects: ensureCounter(registry, {
      name: METRIC.routingEventUpstreamReconnectsTotal,
      help: 'GetContainerEvents streams to a backend that ended and were opened again',
      labelNames: ['backend'],
    }),
    eventUpstreamUp: ensureGauge(registry, {
      name: METRIC.routingEventUpstreamUp,
      help: '1 while the GetContainerEvents stream to the backend is open, 0 while it waits to reconnect',
      labelNames: ['backend'],
    }),
    eventSubscribers: ensureGauge(registry, {
      name: METRIC.routingEventSubscribers,
      help: 'GetContainerEvents callers currently subscribed',
      labelNames: [],
    }),
    eventSubscribersDropped: ensureCounter(registry, {
      name: METRIC.routingEventSubscribersDroppedTotal,
      help: 'GetContainerEvents callers dropped because they fell behind by more than their buffer',
      labelNames: [],
    }),
    missingImages: ensureCounter(registry, {
      name: METRIC.routingMissingImagesTotal,
      help:
        "CreateContainer calls whose image the pod's runtime did not have, by what routing did for kubelet: local_id (it had the " +
        'image under another ID), pulled, pull_denied, pull_failed, not_pulled (images.pullOnCreate off)',
      labelNames: ['backend', 'outcome'],
    }),
    mergedTooLarge: ensureCounter(registry, {
      name: METRIC.routingMergedAnswersTooLargeTotal,
      help: 'Answers merged from every backend that were not sent for being larger than maxMergedAnswerBytes',
      labelNames: ['method'],
    }),
    runtimeConfigConsistent: ensureGauge(registry, {
      name: METRIC.routingRuntimeConfigConsistent,
      help: "1 while every backend's RuntimeConfig answer agrees (as last asked), 0 while they differ",
      labelNames: [],
    }),
  };
}
