import { Registry, collectDefaultMetrics } from 'prom-client';
import { InterceptorTypes } from './chain/interceptor-types';
import { defaultBackend, type ProxyConfig } from './config/schema';
import { checkSocketSafety } from './config/socket-safety';
import { reportDeprecatedSettings } from './config/deprecations';
import { GrpcStatus, ProxyError, errorMessage, listenError } from './errors';
import { createLogger, type Logger } from './log';
import { ensureCounter, ensureGauge } from './metrics/registry';
import { AdminServer, type Readiness } from './admin/admin-server';
import type { Call } from './proxy/call';
import { Chain, type ChainEntry, type FaultListener } from './chain/chain';
import { Downstream } from './chain/own-call';
import { warmCodec } from './messages/codec';
import { dataPlaneMetrics } from './proxy/data-plane-metrics';
import { methodTable } from './chain/method-table';
import { callRuntime } from './proxy/runtime-client';
import { Router } from './proxy/router';
import { ProxyServer } from './proxy/server';
import { Upstream } from './proxy/upstream';
import { builtinInterceptorTypes } from './interceptors';
import { METRIC } from './metrics/names';
import type { PodStartFeed } from './observability/pod-start-feed';
import { PodStartSubscribers } from './observability/pod-start-feed';
import { createPodStarts } from './observability/pod-starts';

export interface AppOptions {
  readonly log?: Logger;
  /** Metrics go here; a fresh registry with the process metrics when absent. */
  readonly registry?: Registry;
  /** The interceptor types the config was validated against; the built-in ones when absent. */
  readonly types?: InterceptorTypes;
  /** An already-listening socket to serve on (from systemd) instead of binding `listen`. */
  readonly listenFd?: number | undefined;
}

interface Generation {
  readonly config: ProxyConfig;
  readonly router: Router;
  readonly chain: Chain<Call>;
  /** This generation's interceptors that hear of finished pod starts. */
  readonly podStarts: PodStartSubscribers;
}

interface Retired {
  readonly timer: NodeJS.Timeout;
  closed: Promise<void> | undefined;
}

const READINESS_TIMEOUT_MS = 1000;
const VERSION_PATH = '/runtime.v1.RuntimeService/Version';

/** The running proxy: CRI server, admin listener and the current config generation, swapped on reload. */
export class App {
  private generation: Generation;
  /** Generations a reload replaced and not yet closed: each closes after the grace period, or at stop. */
  private readonly retired = new Map<Generation, Retired>();
  private reloading: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;

  private constructor(
    private readonly server: ProxyServer,
    private readonly admin: AdminServer | undefined,
    generation: Generation,
    readonly log: Logger,
    readonly registry: Registry,
    private readonly onFault: FaultListener,
    private readonly types: InterceptorTypes,
    private readonly reloads: ReloadMetrics,
    private readonly podStarts: PodStartFeed,
  ) {
    this.generation = generation;
  }

  static async start(config: ProxyConfig, options: AppOptions = {}): Promise<App> {
    const log = options.log ?? createLogger(config.logLevel);
    const registry = options.registry ?? freshRegistry();
    const types = options.types ?? new InterceptorTypes(builtinInterceptorTypes);
    checkSocketSafety(config, log, registry, options.listenFd !== undefined);
    const server = new ProxyServer({
      socket: options.listenFd === undefined ? { path: config.listen.path, mode: config.socketMode.mode } : { fd: options.listenFd },
      maxMessageBytes: config.maxMessageBytes,
      limits: config.limits,
      log,
      registry,
    });
    const app: { current?: App } = {};
    const http = config.http.listen.endpoint;
    // Kept in memory only: nothing here is opened until the listeners are claimed.
    const podStarts = createPodStarts(config.podStarts, registry, log);
    const readiness = (): Promise<Readiness> => app.current?.readiness() ?? notReady();
    const admin = http && new AdminServer({ ...http, log, registry, readiness, routes: podStarts.routes });
    // The listeners come first: a proxy started on a running one's config fails here, before it opens what that
    // one uses (its audit log above all). Calls made meanwhile wait until the chain is ready.
    await server.listen().catch((err: unknown) => Promise.reject(listenError('listen', config.listen.written, err)));
    let generation: Generation | undefined;
    try {
      await admin?.listen().catch((err: unknown) => Promise.reject(listenError('http.listen', config.http.listen.written, err)));
      reportDeprecatedSettings(config, types, log, registry);
      const onFault = faultListener(registry, log);
      generation = buildGeneration(config, types, log, registry, onFault, podStarts.feed);
      podStarts.feed.use(generation.podStarts);
      await warmUp(generation);
      server.serve(generation.chain, generation.router);
      app.current = new App(server, admin, generation, log, registry, onFault, types, reloadMetrics(registry), podStarts.feed);
    } catch (err) {
      await server.close(0);
      await admin?.close();
      podStarts.feed.close();
      if (generation !== undefined) await closeGeneration(generation, log);
      throw err;
    }
    log.info('cri-proxy started', {
      listen: server.socketPath,
      http: admin?.address,
      backends: config.backends.map((b) => ({ name: b.name, endpoint: b.endpoint.written })),
      interceptors: config.interceptors.map((i) => i.name),
    });
    return app.current;
  }

  get config(): ProxyConfig {
    return this.generation.config;
  }

  /** The CRI socket's path: the one bound, or under socket activation the one `listen` names. */
  get socketPath(): string {
    return this.server.socketPath ?? this.config.listen.path;
  }

  get adminAddress(): string | undefined {
    return this.admin?.address;
  }

  /**
   * Reloads from wherever `load` reads the config (SIGHUP): a config that does not load is refused and the running
   * one kept. Counted by result in `cri_proxy_config_reloads_total`.
   */
  async reloadWith(load: () => ProxyConfig): Promise<ReloadResult> {
    let config: ProxyConfig;
    try {
      config = load();
    } catch (err) {
      this.log.error('reload rejected; keeping the current configuration', { error: errorMessage(err) });
      return this.reloads.record('rejected');
    }
    try {
      await this.reload(config);
    } catch (err) {
      this.log.error('reload failed; keeping the current configuration', { error: errorMessage(err) });
      return this.reloads.record('failed');
    }
    return this.reloads.record('applied');
  }

  /** Swaps in a new config for new calls; calls in flight finish with the old one. */
  async reload(config: ProxyConfig): Promise<void> {
    if (this.stopping !== undefined) throw new Error('cri-proxy is stopping');
    const reloading = this.swapIn(config);
    this.reloading = reloading;
    try {
      await reloading;
    } finally {
      if (this.reloading === reloading) this.reloading = undefined;
    }
  }

  private async swapIn(config: ProxyConfig): Promise<void> {
    const old = this.generation;
    if (config.listen.path !== old.config.listen.path || config.http.listen.written !== old.config.http.listen.written) {
      this.log.warn('listen addresses change only on restart; keeping the current ones');
    }
    if (JSON.stringify(config.podStarts) !== JSON.stringify(old.config.podStarts)) {
      this.log.warn('podStarts settings change only on restart; keeping the current ones');
    }
    this.log.level = config.logLevel;
    const next = buildGeneration(config, this.types, this.log, this.registry, this.onFault, this.podStarts);
    await warmUp(next);
    if (this.stopping !== undefined) {
      // A stop began while the new generation warmed up: it never serves.
      await closeGeneration(next, this.log);
      throw new Error('cri-proxy is stopping');
    }
    this.generation = next;
    this.server.serve(next.chain, next.router);
    this.podStarts.use(next.podStarts);
    reportDeprecatedSettings(config, this.types, this.log, this.registry);
    this.log.info('configuration reloaded', { interceptors: config.interceptors.map((i) => i.name) });
    this.retireLater(old, config.shutdownGraceSeconds * 1000);
  }

  /** Closes a replaced generation once its calls have had time to finish, or at stop if that comes first. */
  private retireLater(generation: Generation, afterMs: number): void {
    const retired: Retired = {
      timer: setTimeout(() => void this.closeRetired(generation, retired), afterMs),
      closed: undefined,
    };
    retired.timer.unref();
    this.retired.set(generation, retired);
  }

  private closeRetired(generation: Generation, retired: Retired): Promise<void> {
    clearTimeout(retired.timer);
    retired.closed ??= closeGeneration(generation, this.log).finally(() => this.retired.delete(generation));
    return retired.closed;
  }

  /** Ready when every backend answers Version; the detail has one line per backend with its state. */
  async readiness(): Promise<Readiness> {
    const upstreams = [...this.generation.router.upstreams];
    const problems = await Promise.all(upstreams.map(versionProblem));
    const detail = upstreams.map((u, i) => `backend "${u.name}": ${problems[i] === undefined ? 'ready' : `not ready: ${problems[i]}`}`);
    return { ready: problems.every((p) => p === undefined), detail: detail.join('\n') };
  }

  /**
   * Stops accepting, lets calls in flight finish within the grace period, then closes every generation of the
   * config: the current one and those a reload replaced whose calls may still have been running.
   */
  stop(graceMs = this.generation.config.shutdownGraceSeconds * 1000): Promise<void> {
    this.stopping ??= this.stopOnce(graceMs);
    return this.stopping;
  }

  private async stopOnce(graceMs: number): Promise<void> {
    this.log.info('cri-proxy stopping', { graceMs, activeCalls: this.server.activeCalls });
    await this.server.close(graceMs);
    // Pods whose containers have started are reported now, while the interceptors that record them are open.
    this.podStarts.close();
    await this.admin?.close();
    // A reload under way closes its own generation when it sees the stop.
    await this.reloading?.catch(() => undefined);
    await Promise.all([
      closeGeneration(this.generation, this.log),
      ...[...this.retired].map(([generation, retired]) => this.closeRetired(generation, retired)),
    ]);
    this.log.info('cri-proxy stopped');
  }
}

/** Time start-up (or a reload) waits at most for the warm-up. */
const WARM_UP_MS = 1000;

/**
 * Before calls are taken: decoders built, interceptors' lazy parts loaded, a connection open to every runtime
 * (and its path through the relay run once), so the first pod after a start is as fast as the next. Bounded:
 * a runtime that does not answer only delays start-up by WARM_UP_MS.
 */
async function warmUp(generation: Generation): Promise<void> {
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

export type ReloadResult = 'applied' | 'rejected' | 'failed';

interface ReloadMetrics {
  record(result: ReloadResult): ReloadResult;
}

function reloadMetrics(registry: Registry): ReloadMetrics {
  const reloads = ensureCounter(registry, {
    name: METRIC.configReloadsTotal,
    help: 'Configuration reloads (SIGHUP) by result: applied, rejected (did not validate) or failed (could not be built)',
    labelNames: ['result'] as const,
  });
  const lastOk = ensureGauge(registry, {
    name: METRIC.configLastReloadSuccessful,
    help: '1 if the last configuration reload was applied (or none was tried yet), 0 if it was refused',
    labelNames: [],
  });
  for (const result of ['applied', 'rejected', 'failed']) reloads.inc({ result }, 0);
  lastOk.set(1);
  return {
    record: (result) => {
      reloads.inc({ result });
      lastOk.set(result === 'applied' ? 1 : 0);
      return result;
    },
  };
}

/** Counts and logs every interceptor failure, for every generation of the config. */
function faultListener(registry: Registry, log: Logger): FaultListener {
  const faults = ensureCounter(registry, {
    name: METRIC.interceptorErrorsTotal,
    help: 'Interceptor failures, by interceptor and what the call did about it (failOpen or failClosed)',
    labelNames: ['interceptor', 'on_error'] as const,
  });
  return (entry, error, ctx) => {
    faults.inc({ interceptor: entry.interceptor.name, on_error: entry.onError });
    log.error('interceptor failed', {
      interceptor: entry.interceptor.name,
      onError: entry.onError,
      method: ctx.method.path,
      ...(error instanceof ProxyError ? { code: error.code } : {}),
      error: errorMessage(error),
    });
  };
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

function freshRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}

function notReady(): Promise<Readiness> {
  return Promise.resolve({ ready: false, detail: 'starting' });
}

function buildGeneration(
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

/** Releases what a generation holds: its runtime connections and its interceptors (audit writers, exporters). */
async function closeGeneration(generation: Generation, log: Logger): Promise<void> {
  generation.router.close();
  for (const entry of generation.chain.entries) {
    try {
      await entry.interceptor.close?.();
    } catch (err) {
      log.warn('interceptor did not close cleanly', { interceptor: entry.interceptor.name, error: errorMessage(err) });
    }
  }
}
