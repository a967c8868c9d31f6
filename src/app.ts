import { Registry, collectDefaultMetrics } from 'prom-client';
import { InterceptorTypes } from './chain/interceptor-types';
import type { FaultListener } from './chain/chain';
import type { ProxyConfig } from './config/schema';
import { checkSocketSafety } from './config/socket-safety';
import { reportDeprecatedSettings } from './config/deprecations';
import { ProxyError, errorMessage, listenError } from './errors';
import { createLogger, type Logger } from './log';
import { ensureCounter, ensureGauge } from './metrics/registry';
import { AdminServer, type Readiness } from './admin/admin-server';
import { ProxyServer } from './proxy/server';
import { builtinInterceptorTypes } from './interceptors';
import { METRIC } from './metrics/names';
import type { PodStartFeed } from './observability/pod-start-feed';
import { createPodStarts } from './observability/pod-starts';
import { buildGeneration, closeGeneration, readinessOf, warmUp, type Generation } from './generation';

export interface AppOptions {
  readonly log?: Logger;
  /** Metrics go here; a fresh registry with the process metrics when absent. */
  readonly registry?: Registry;
  /** The interceptor types the config was validated against; the built-in ones when absent. */
  readonly types?: InterceptorTypes;
  /** An already-listening socket to serve on (from systemd) instead of binding `listen`. */
  readonly listenFd?: number | undefined;
}

interface Retired {
  readonly timer: NodeJS.Timeout;
  closed: Promise<void> | undefined;
}

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
  readiness(): Promise<Readiness> {
    return readinessOf(this.generation);
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

function freshRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}

function notReady(): Promise<Readiness> {
  return Promise.resolve({ ready: false, detail: 'starting' });
}
