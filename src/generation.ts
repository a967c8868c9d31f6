/**
 * One generation of the config: the runtime connections and the chain of interceptors built from it. A reload
 * builds the next generation beside the serving one; a replaced generation closes once its calls are done.
 */
import type { Registry } from 'prom-client';
import type { Readiness } from './admin/admin-server';
import { InterceptorTypes } from './chain/interceptor-types';
import { Chain, type ChainEntry, type FaultListener } from './chain/chain';
import { methodTable } from './chain/method-table';
import { Downstream } from './chain/own-call';
import { defaultBackend, type ProxyConfig } from './config/schema';
import { GrpcStatus, errorMessage } from './errors';
import type { Logger } from './log';
import { warmCodec } from './messages/codec';
import { PodStartSubscribers, type PodStartFeed } from './observability/pod-start-feed';
import type { Call } from './proxy/call';
import { dataPlaneMetrics } from './proxy/data-plane-metrics';
import { Router } from './proxy/router';
import { callRuntime } from './proxy/runtime-client';
import { Upstream } from './proxy/upstream';

export interface Generation {
  readonly config: ProxyConfig;
  readonly router: Router;
  readonly chain: Chain<Call>;
  /** This generation's interceptors that hear of finished pod starts. */
  readonly podStarts: PodStartSubscribers;
}

const VERSION_PATH = '/runtime.v1.RuntimeService/Version';
const READINESS_TIMEOUT_MS = 1000;
/** Time start-up (or a reload) waits at most for the warm-up. */
const WARM_UP_MS = 1000;

export function buildGeneration(
  config: ProxyConfig,
  types: InterceptorTypes,
  log: Logger,
  registry: Registry,
  onFault: FaultListener,
  podStartFeed: PodStartFeed,
): Generation {
  const metrics = dataPlaneMetrics(registry, log);
  const upstreams = config.backends.map(
    (backend) =>
      new Upstream({
        name: backend.name,
        socketPath: backend.endpoint.path,
        connectTimeoutMs: backend.connectTimeoutMs,
        maxMessageBytes: config.maxMessageBytes,
        log,
        onProtocolError: (error) => metrics.protocolError('runtime', error),
      }),
  );
  const router = new Router(upstreams, defaultBackend(config).name);
  const podStarts = new PodStartSubscribers();
  const entries: ChainEntry[] = config.interceptors.map((entry) => {
    const type = types.get(entry.type);
    if (!type) throw new Error(`interceptor type "${entry.type}" is not known`);
    const downstream = new Downstream(router, entry.name);
    const interceptor = type.create(entry.config, {
      name: entry.name,
      log: log.child({ interceptor: entry.name }),
      registry,
      router,
      downstream,
      podStarts,
    });
    return { interceptor, onError: entry.onError, methods: entry.methods, downstream };
  });
  const chain = new Chain<Call>(entries, (call) => call.forward(), onFault, podStartFeed.observer(podStarts));
  return { config, router, chain, podStarts };
}

/**
 * Before calls are taken: the interceptors' decoders built, their lazy parts loaded, a connection open to every
 * runtime (and its path through the relay run once), so the first pod after a start is as fast as the next.
 * Pod starts are read on the wire and need no decoder: without interceptors no schema is loaded. Bounded: a
 * runtime that does not answer only delays start-up by WARM_UP_MS.
 */
export async function warmUp(generation: Generation): Promise<void> {
  warmCodec(generation.chain.typesRead(methodTable));
  const pending: Promise<void>[] = [
    ...generation.chain.entries.flatMap((e) => e.interceptor.warmUp?.() ?? []),
    ...[...generation.router.upstreams].map((u) =>
      callRuntime(u, VERSION_PATH, Buffer.alloc(0), WARM_UP_MS).then(
        () => undefined,
        () => undefined,
      ),
    ),
  ];
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<void>((resolve) => (timer = setTimeout(resolve, WARM_UP_MS)));
  await Promise.race([Promise.all(pending), expired]);
  clearTimeout(timer);
}

/** Ready when every backend answers Version; the detail has one line per backend with its state. */
export async function readinessOf(generation: Generation): Promise<Readiness> {
  const upstreams = [...generation.router.upstreams];
  const problems = await Promise.all(upstreams.map(versionProblem));
  const detail = upstreams.map((u, i) => `backend "${u.name}": ${problems[i] === undefined ? 'ready' : `not ready: ${problems[i]}`}`);
  return { ready: problems.every((p) => p === undefined), detail: detail.join('\n') };
}

/** Why the runtime is not ready (it does not answer Version with OK in time), or undefined when it is. */
async function versionProblem(upstream: Upstream): Promise<string | undefined> {
  try {
    const reply = await callRuntime(upstream, VERSION_PATH, Buffer.alloc(0), READINESS_TIMEOUT_MS);
    return reply.code === GrpcStatus.OK ? undefined : `Version answered with status ${reply.code}: ${reply.message}`;
  } catch (err) {
    return errorMessage(err);
  }
}

/** Releases what a generation holds: its runtime connections and its interceptors (audit writers, exporters). */
export async function closeGeneration(generation: Generation, log: Logger): Promise<void> {
  generation.router.close();
  for (const entry of generation.chain.entries) {
    try {
      await entry.interceptor.close?.();
    } catch (err) {
      log.warn('interceptor did not close cleanly', { interceptor: entry.interceptor.name, error: errorMessage(err) });
    }
  }
}
