import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Registry } from 'prom-client';
import type { InterceptorDeps } from '../../src/chain/interceptor-types';
import { silentLogger, type Logger } from '../../src/log';
import type { Call } from '../../src/proxy/call';
import { Chain, type CallObserver, type ChainEntry, type FaultListener } from '../../src/chain/chain';
import { Router } from '../../src/proxy/router';
import { dataPlaneMetrics } from '../../src/proxy/data-plane-metrics';
import type { ConnectionError, StreamError } from '../../src/proxy/http2/frames';
import type { LocalSettings } from '../../src/proxy/http2/local-settings';
import { limitsSchema } from '../../src/config/schema';
import type { Limits } from '../../src/proxy/limits';
import { ProxyServer, type ProxyServerOptions } from '../../src/proxy/server';
import { Upstream } from '../../src/proxy/upstream';
import { FakeRuntime } from './fake-runtime';
import { inheritedSocket } from './inherited-socket';

export interface TestProxy {
  readonly dir: string;
  /** The default backend's runtime. */
  readonly runtime: FakeRuntime;
  /** Every backend's runtime by backend name, in backend order (the default first). */
  readonly runtimes: ReadonlyMap<string, FakeRuntime>;
  readonly server: ProxyServer;
  readonly serverOptions: ProxyServerOptions;
  /** What the proxy's calls are routed by (the current one after a restart). */
  readonly router: Router;
  readonly socketPath: string;
  readonly faults: { entry: string; error: unknown }[];
  client(): RawClient;
  /**
   * Stops the proxy (calls in flight get `graceMs` to finish) and starts a new one on the same socket and
   * runtimes, with entries built afresh by `entriesFor`: what a restart of the process does.
   */
  restart(graceMs?: number): Promise<void>;
  close(): Promise<void>;
}

export interface TestProxyOptions {
  readonly entries?: readonly ChainEntry[];
  /**
   * Entries built once the router exists (interceptors that call the backends from the start, such as routing);
   * they run after `entries` and the harness closes them.
   */
  readonly entriesFor?: (router: Router) => readonly ChainEntry[];
  /** Backend names, each served by a fake runtime of its own; the first is the default. One "fake" unless given. */
  readonly backends?: readonly string[];
  readonly maxMessageBytes?: number;
  readonly log?: Logger;
  /** Do not start the fake runtimes (to test an unreachable upstream). */
  readonly runtimeDown?: boolean;
  /** Paths outside CRI v1 the fake runtime serves too. */
  readonly extraMethods?: readonly string[];
  /** Client connection limits of the proxy's server; the config's defaults for those not given. */
  readonly limits?: Partial<Limits>;
  /**
   * How the proxy gets its socket: it binds the path itself (`path`, the default) or is handed a listening
   * descriptor, as socket activation does (`inherited`).
   */
  readonly socket?: SocketMode;
  /** Windows and header limit the proxy announces to the runtime. */
  readonly upstreamSettings?: Partial<LocalSettings>;
  /** Where the data plane's metrics go. */
  readonly registry?: Registry;
  /** Watches calls from outside the chain, as the app's pod-start feed does. */
  readonly observer?: CallObserver<Call>;
}

export type SocketMode = 'path' | 'inherited';

/** A listening descriptor for `socketPath`, made as the socket unit would make it. */
async function inheritedFd(socketPath: string): Promise<number> {
  fs.mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o750 });
  return inheritedSocket(socketPath);
}

export function makeTempDir(prefix = 'cri-proxy-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

interface Running {
  readonly router: Router;
  readonly server: ProxyServer;
  readonly serverOptions: ProxyServerOptions;
  readonly owned: readonly ChainEntry[];
}

/** Fake runtimes and a proxy in front of them, all on sockets in a fresh temp dir. */
export async function startTestProxy(options: TestProxyOptions = {}): Promise<TestProxy> {
  const dir = makeTempDir();
  const names = options.backends ?? ['fake'];
  const [defaultName] = names;
  if (defaultName === undefined) throw new Error('at least one backend');
  const runtimes = new Map(
    names.map((name) => [
      name,
      new FakeRuntime(path.join(dir, names.length === 1 ? 'runtime.sock' : `${name}.sock`), options.extraMethods),
    ]),
  );
  if (!options.runtimeDown) for (const runtime of runtimes.values()) await runtime.start();
  const log = options.log ?? silentLogger;
  const maxMessageBytes = options.maxMessageBytes ?? 16 * 1024 * 1024;
  const faults: { entry: string; error: unknown }[] = [];
  const onFault: FaultListener = (entry, error) => faults.push({ entry: entry.interceptor.name, error });
  const socketPath = path.join(dir, 'proxy', 'cri-proxy.sock');

  const start = async (): Promise<Running> => {
    // Runtime-side protocol errors are counted where the app counts them, when the test watches a registry.
    const metrics = options.registry ? dataPlaneMetrics(options.registry, log) : undefined;
    const runtimeErrors = metrics ? (error: ConnectionError | StreamError): void => metrics.protocolError('runtime', error) : undefined;
    const upstreams = [...runtimes].map(
      ([name, runtime]) =>
        new Upstream({
          name,
          socketPath: runtime.socketPath,
          connectTimeoutMs: 1000,
          maxMessageBytes,
          log,
          ...(options.upstreamSettings ? { settings: options.upstreamSettings } : {}),
          ...(runtimeErrors ? { onProtocolError: runtimeErrors } : {}),
        }),
    );
    const router = new Router(upstreams, defaultName);
    const owned = options.entriesFor?.(router) ?? [];
    const chain = new Chain<Call>([...(options.entries ?? []), ...owned], (call) => call.forward(), onFault, options.observer);
    const serverOptions: ProxyServerOptions = {
      socket: options.socket === 'inherited' ? { fd: await inheritedFd(socketPath) } : { path: socketPath, mode: 0o660 },
      maxMessageBytes,
      log,
      limits: limitsSchema.parse(options.limits ?? {}),
      ...(options.registry ? { registry: options.registry } : {}),
    };
    const server = new ProxyServer(serverOptions);
    await server.listen();
    server.serve(chain, router);
    return { router, server, serverOptions, owned };
  };
  const stop = async (running: Running, graceMs: number): Promise<void> => {
    await running.server.close(graceMs);
    running.router.close();
    for (const entry of running.owned) await entry.interceptor.close?.();
  };

  let running = await start();
  const clients: RawClient[] = [];
  return {
    dir,
    runtime: runtimes.get(defaultName) as FakeRuntime,
    runtimes,
    get server() {
      return running.server;
    },
    get serverOptions() {
      return running.serverOptions;
    },
    get router() {
      return running.router;
    },
    socketPath,
    faults,
    client: () => {
      const c = new RawClient(`unix:${socketPath}`);
      clients.push(c);
      return c;
    },
    restart: async (graceMs = 100) => {
      await stop(running, graceMs);
      running = await start();
    },
    close: async () => {
      for (const c of clients) c.close();
      await stop(running, 100);
      for (const runtime of runtimes.values()) await runtime.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

const identity = (b: Buffer): Buffer => b;

export interface RawResult {
  readonly response: Buffer | undefined;
  readonly status: grpc.StatusObject;
  readonly headers: grpc.Metadata | undefined;
}

/** A grpc-js client that sends and receives raw message bytes on any path. */
export class RawClient {
  readonly client: grpc.Client;

  constructor(target: string, options: grpc.ChannelOptions = {}) {
    this.client = new grpc.Client(target, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': -1,
      'grpc.max_send_message_length': -1,
      ...options,
    });
  }

  unary(path: string, request: Buffer, metadata = new grpc.Metadata(), options: grpc.CallOptions = {}): Promise<RawResult> {
    return new Promise((resolve) => {
      let headers: grpc.Metadata | undefined;
      let response: Buffer | undefined;
      const call = this.client.makeUnaryRequest(path, identity, identity, request, metadata, options, (err, value) => {
        response = value ?? undefined;
        if (err) resolve({ response, status: { code: err.code, details: err.details, metadata: err.metadata }, headers });
      });
      call.on('metadata', (m: grpc.Metadata) => {
        headers = m;
      });
      call.on('status', (status: grpc.StatusObject) => {
        if (status.code === grpc.status.OK) resolve({ response, status, headers });
      });
    });
  }

  serverStream(
    path: string,
    request: Buffer,
    metadata = new grpc.Metadata(),
    options: grpc.CallOptions = {},
  ): grpc.ClientReadableStream<Buffer> {
    return this.client.makeServerStreamRequest(path, identity, identity, request, metadata, options);
  }

  close(): void {
    this.client.close();
  }
}

/**
 * Dependencies for an interceptor built before its test proxy exists: the router is read from the proxy
 * once `bind` has been called (the interceptor needs it only when calls arrive).
 */
export function depsForTestProxy(
  name: string,
  registry: Registry,
  log: Logger = silentLogger,
): { deps: InterceptorDeps; bind: (proxy: TestProxy) => void } {
  const holder: { proxy?: TestProxy } = {};
  const deps: InterceptorDeps = {
    name,
    log,
    registry,
    get router() {
      if (holder.proxy === undefined) throw new Error('proxy not started');
      return holder.proxy.router;
    },
  };
  return { deps, bind: (proxy) => (holder.proxy = proxy) };
}
