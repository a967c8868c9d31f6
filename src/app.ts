import { Registry, collectDefaultMetrics } from 'prom-client';
import { parseHostPort, parseUnixAddress } from './config/address';
import { InterceptorTypes } from './chain/interceptor-types';
import { defaultBackend, type ProxyConfig } from './config/schema';
import { checkSocketSafety } from './config/socket-safety';
import { GrpcStatus, ProxyError, errorMessage, listenError } from './errors';
import { createLogger, type Logger } from './log';
import { ensureCounter, ensureGauge } from './metrics/registry';
import { AdminServer, type Readiness } from './admin/admin-server';
import type { Call } from './proxy/call';
import { Chain, type ChainEntry, type FaultListener } from './chain/chain';
import { warmCodec } from './messages/codec';
import { dataPlaneMetrics } from './proxy/data-plane-metrics';
import { methodTable } from './chain/method-table';
import { callRuntime } from './proxy/runtime-client';
import { Router } from './proxy/router';
import { ProxyServer } from './proxy/server';
import { Upstream } from './proxy/upstream';
import { builtinInterceptorTypes } from './interceptors';
import { METRIC } from './metrics/names';

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
}

const READINESS_TIMEOUT_MS = 1000;
const VERSION_PATH = '/runtime.v1.RuntimeService/Version';

/** The running proxy: CRI server, admin listener and the current config generation, swapped on reload. */
export class App {
  private generation: Generation;

  private constructor(
    private readonly server: ProxyServer,
    private readonly admin: AdminServer | undefined,
    generation: Generation,
    readonly log: Logger,
    readonly registry: Registry,
    private readonly onFault: FaultListener,
    private readonly types: InterceptorTypes,
    private readonly reloads: ReloadMetrics,
  ) {
    this.generation = generation;
  }

  static async start(config: ProxyConfig, options: AppOptions = {}): Promise<App> {
    const log = options.log ?? createLogger(config.logLevel);
    const registry = options.registry ?? freshRegistry();
    const types = options.types ?? new InterceptorTypes(builtinInterceptorTypes);
    checkSocketSafety(config, log, registry, options.listenFd !== undefined);
    const onFault = faultListener(registry, log);
    const generation = buildGeneration(config, types, log, registry, onFault);
    await warmUp(generation);
    const server = new ProxyServer({
      socketPath: parseUnixAddress(config.listen),
      socketMode: Number.parseInt(config.socketMode, 8),
      maxMessageBytes: config.maxMessageBytes,
      log,
      router: generation.router,
      chain: generation.chain,
      registry,
      limits: config.limits,
      inheritedFd: options.listenFd,
    });
    let admin: AdminServer | undefined;
    const app: { current?: App } = {};
    if (config.http.listen !== '') {
      const { host, port } = parseHostPort(config.http.listen);
      admin = new AdminServer({ host, port, log, registry, readiness: () => app.current?.readiness() ?? notReady() });
    }
    try {
      await server.listen().catch((err: unknown) => Promise.reject(listenError('listen', config.listen, err)));
    } catch (err) {
      await retire(generation, 0, log);
      throw err;
    }
    try {
      await admin?.listen().catch((err: unknown) => Promise.reject(listenError('http.listen', config.http.listen, err)));
    } catch (err) {
      await server.close(0);
      await retire(generation, 0, log);
      throw err;
    }
    app.current = new App(server, admin, generation, log, registry, onFault, types, reloadMetrics(registry));
    log.info('cri-proxy started', {
      listen: server.socketPath,
      http: admin?.address,
      backends: config.backends.map((b) => ({ name: b.name, endpoint: b.endpoint })),
      interceptors: config.interceptors.map((i) => i.name),
    });
    return app.current;
  }

  get config(): ProxyConfig {
    return this.generation.config;
  }

  get socketPath(): string {
    return this.server.socketPath;
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
    const old = this.generation;
    if (config.listen !== old.config.listen || config.http.listen !== old.config.http.listen) {
      this.log.warn('listen addresses change only on restart; keeping the current ones');
    }
    this.log.level = config.logLevel;
    const next = buildGeneration(config, this.types, this.log, this.registry, this.onFault);
    await warmUp(next);
    this.generation = next;
    this.server.reconfigure(next.chain, next.router, this.log);
    this.log.info('configuration reloaded', { interceptors: config.interceptors.map((i) => i.name) });
    await retire(old, config.shutdownGraceSeconds * 1000, this.log);
  }

  /** Ready when every backend answers Version; the detail has one line per backend with its state. */
  async readiness(): Promise<Readiness> {
    const upstreams = [...this.generation.router.upstreams];
    const problems = await Promise.all(upstreams.map(versionProblem));
    const detail = upstreams.map((u, i) => `backend "${u.name}": ${problems[i] === undefined ? 'ready' : `not ready: ${problems[i]}`}`);
    return { ready: problems.every((p) => p === undefined), detail: detail.join('\n') };
  }

  /** Stops accepting, lets calls in flight finish within the grace period, releases everything. */
  async stop(graceMs = this.generation.config.shutdownGraceSeconds * 1000): Promise<void> {
    this.log.info('cri-proxy stopping', { graceMs, activeCalls: this.server.activeCalls });
    await this.server.close(graceMs);
    await this.admin?.close();
    await retire(this.generation, 0, this.log);
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
): Generation {
  const metrics = dataPlaneMetrics(registry, log);
  const upstreams = config.backends.map(
    (backend) =>
      new Upstream({
        name: backend.name,
        socketPath: parseUnixAddress(backend.endpoint),
        connectTimeoutMs: backend.connectTimeoutMs,
        maxMessageBytes: config.maxMessageBytes,
        log,
        onProtocolError: (error) => metrics.protocolError('runtime', error),
      }),
  );
  const router = new Router(upstreams, defaultBackend(config).name);
  const entries: ChainEntry[] = config.interceptors.map((entry) => {
    const type = types.get(entry.type);
    if (!type) throw new Error(`interceptor type "${entry.type}" is not known`);
    const interceptor = type.create(entry.config, { name: entry.name, log: log.child({ interceptor: entry.name }), registry, router });
    return { interceptor, onError: entry.onError, methods: entry.methods };
  });
  const chain = new Chain<Call>(entries, (call) => call.forward(), onFault);
  return { config, router, chain };
}

/** Closes a replaced generation once its calls have had time to finish. */
async function retire(generation: Generation, afterMs: number, log: Logger): Promise<void> {
  const close = async (): Promise<void> => {
    generation.router.close();
    for (const entry of generation.chain.entries) {
      try {
        await entry.interceptor.close?.();
      } catch (err) {
        log.warn('interceptor did not close cleanly', { interceptor: entry.interceptor.name, error: errorMessage(err) });
      }
    }
  };
  if (afterMs <= 0) {
    await close();
    return;
  }
  setTimeout(() => void close(), afterMs).unref();
}
