import { Counter, Registry, collectDefaultMetrics } from 'prom-client';
import { parseHostPort, parseUnixAddress } from './config/address';
import { interceptorType } from './config/interceptor-types';
import { defaultBackend, type ProxyConfig } from './config/schema';
import { errorMessage } from './errors';
import { createLogger, type Logger } from './log';
import { AdminServer, type Readiness } from './proxy/admin-server';
import type { Call } from './proxy/call';
import { Chain, type ChainEntry, type FaultListener } from './proxy/chain';
import { dataPlaneMetrics } from './proxy/data-plane-metrics';
import { callRuntime } from './proxy/runtime-client';
import { Router } from './proxy/router';
import { ProxyServer } from './proxy/server';
import { Upstream } from './proxy/upstream';
import './interceptors';

export interface AppOptions {
  readonly log?: Logger;
  /** Metrics go here; a fresh registry with the process metrics when absent. */
  readonly registry?: Registry;
}

interface Generation {
  readonly config: ProxyConfig;
  readonly router: Router;
  readonly chain: Chain<Call>;
}

const READINESS_TIMEOUT_MS = 1000;

/** The running proxy: CRI server, admin listener and the current config generation, swapped on reload. */
export class App {
  private generation: Generation;
  private readonly faults: Counter<'interceptor' | 'on_error'>;

  private constructor(
    private readonly server: ProxyServer,
    private readonly admin: AdminServer | undefined,
    generation: Generation,
    readonly log: Logger,
    readonly registry: Registry,
    faults: Counter<'interceptor' | 'on_error'>,
  ) {
    this.generation = generation;
    this.faults = faults;
  }

  static async start(config: ProxyConfig, options: AppOptions = {}): Promise<App> {
    const log = options.log ?? createLogger(config.logLevel);
    const registry = options.registry ?? freshRegistry();
    const faults = new Counter({
      name: 'cri_proxy_interceptor_errors_total',
      help: 'Interceptor failures, by interceptor and what the call did about it (failOpen or failClosed)',
      labelNames: ['interceptor', 'on_error'] as const,
      registers: [registry],
    });
    const onFault: FaultListener = (entry, error, ctx) => {
      faults.inc({ interceptor: entry.interceptor.name, on_error: entry.onError });
      log.error('interceptor failed', {
        interceptor: entry.interceptor.name,
        onError: entry.onError,
        method: ctx.method.path,
        error: errorMessage(error),
      });
    };
    const generation = buildGeneration(config, log, registry, onFault);
    const server = new ProxyServer({
      socketPath: parseUnixAddress(config.listen),
      socketMode: Number.parseInt(config.socketMode, 8),
      maxMessageBytes: config.maxMessageBytes,
      log,
      router: generation.router,
      chain: generation.chain,
      registry,
      limits: config.limits,
    });
    let admin: AdminServer | undefined;
    const app: { current?: App } = {};
    if (config.http.listen !== '') {
      const { host, port } = parseHostPort(config.http.listen);
      admin = new AdminServer({ host, port, log, registry, readiness: () => app.current?.readiness() ?? notReady() });
    }
    await server.listen();
    try {
      await admin?.listen();
    } catch (err) {
      await server.close(0);
      throw err;
    }
    app.current = new App(server, admin, generation, log, registry, faults);
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

  /** Swaps in a new config for new calls; calls in flight finish with the old one. */
  async reload(config: ProxyConfig): Promise<void> {
    const old = this.generation;
    if (config.listen !== old.config.listen || config.http.listen !== old.config.http.listen) {
      this.log.warn('listen addresses change only on restart; keeping the current ones');
    }
    this.log.level = config.logLevel;
    const onFault: FaultListener = (entry, error, ctx) => {
      this.faults.inc({ interceptor: entry.interceptor.name, on_error: entry.onError });
      this.log.error('interceptor failed', { interceptor: entry.interceptor.name, method: ctx.method.path, error: errorMessage(error) });
    };
    const next = buildGeneration(config, this.log, this.registry, onFault);
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

/** Why the runtime is not ready (it does not answer Version with OK in time), or undefined when it is. */
async function versionProblem(upstream: Upstream): Promise<string | undefined> {
  try {
    const reply = await callRuntime(upstream, '/runtime.v1.RuntimeService/Version', Buffer.alloc(0), READINESS_TIMEOUT_MS);
    return reply.code === 0 ? undefined : `Version answered with status ${reply.code}: ${reply.message}`;
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

function buildGeneration(config: ProxyConfig, log: Logger, registry: Registry, onFault: FaultListener): Generation {
  const metrics = dataPlaneMetrics(registry);
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
    const type = interceptorType(entry.type);
    if (!type) throw new Error(`interceptor type "${entry.type}" is not registered`);
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
