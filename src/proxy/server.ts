import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { Registry } from 'prom-client';
import { ProxyError, errorMessage } from '../errors';
import type { Logger } from '../log';
import { Call, type CallEnvironment } from './call';
import type { Chain } from '../chain/chain';
import { ClientConnection } from './client-connection';
import type { ClientStream } from './client-stream';
import { dataPlaneMetrics, type DataPlaneMetrics } from './data-plane-metrics';
import type { Limits } from './limits';
import { lookupMethod } from '../chain/method-table';
import type { Router } from './router';

/** Where the CRI socket comes from. */
export type CriSocket =
  /** A path the proxy binds (its directory created, a stale socket replaced), gives `mode`, and removes on close. */
  | { readonly path: string; readonly mode: number }
  /** A listening descriptor passed in (systemd socket activation): systemd made the file and keeps it. */
  | { readonly fd: number };

export interface ProxyServerOptions {
  readonly socket: CriSocket;
  readonly maxMessageBytes: number;
  readonly limits: Limits;
  readonly log: Logger;
  /** Where the data plane's own metrics go (limits, protocol errors, connections). */
  readonly registry?: Registry;
}

/** What calls run through; swapped at runtime (config reload), calls in flight keep the one they started with. */
interface Serving {
  readonly chain: Chain<Call>;
  readonly env: CallEnvironment;
}

/**
 * The proxy's CRI endpoint: a unix socket speaking HTTP/2 through the proxy's own frame relay, every stream a
 * call run through the chain. `listen` claims the socket; connections made before `serve` says what calls run
 * through wait, unread, as they would in the socket's backlog.
 */
export class ProxyServer {
  private readonly listener: net.Server;
  private readonly connections = new Set<ClientConnection>();
  /** Connections accepted before serve(). */
  private readonly waiting = new Set<net.Socket>();
  private serving: Serving | undefined;
  private inFlight = 0;
  /** Calls on watch streams, ended at shutdown so their clients subscribe again to the next process. */
  private readonly watches = new Set<Call>();
  private idleSweep: NodeJS.Timeout | undefined;
  private readonly counters: DataPlaneMetrics;
  private closing = false;
  /** The socket file this process bound, and so removes on close. */
  private boundPath: string | undefined;

  constructor(private readonly options: ProxyServerOptions) {
    this.counters = dataPlaneMetrics(options.registry ?? new Registry(), options.log);
    this.listener = net.createServer((socket) => this.accept(socket));
    this.listener.on('error', (err) => options.log.error('listener error', { error: err.message }));
  }

  /** The socket's path, when the proxy bound it. */
  get socketPath(): string | undefined {
    return 'path' in this.options.socket ? this.options.socket.path : undefined;
  }

  get activeCalls(): number {
    return this.inFlight;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Bytes the client connections hold in the proxy (see ClientConnection.bytesHeld): what floods are bounded by. */
  get bytesHeld(): number {
    let bytes = 0;
    for (const c of this.connections) bytes += c.bytesHeld;
    return bytes;
  }

  /** What new calls run through from now on; calls in flight finish with what they started with. */
  serve(chain: Chain<Call>, router: Router): void {
    const { maxMessageBytes, log } = this.options;
    this.serving = { chain, env: { maxMessageBytes, log, router } };
    for (const socket of this.waiting) this.admit(socket);
    this.waiting.clear();
  }

  /** Claims the socket, bound here or passed in; from then on both are served alike. */
  async listen(): Promise<void> {
    const socket = this.options.socket;
    if ('path' in socket) {
      await bindSocketFile(this.listener, socket.path, socket.mode);
      this.boundPath = socket.path;
    } else await listenOn(this.listener, { fd: socket.fd });
    this.startIdleSweep();
  }

  /** Stops accepting, lets calls in flight finish within `graceMs`, then closes what is left. */
  async close(graceMs: number): Promise<void> {
    this.closing = true;
    clearInterval(this.idleSweep);
    // Closing our descriptor stops accepting; under socket activation systemd's copy stays open, and new
    // connections wait in its backlog for the next process.
    const closed = new Promise<void>((resolve) => this.listener.close(() => resolve()));
    for (const socket of this.waiting) socket.destroy();
    this.waiting.clear();
    const drained = Promise.all([...this.connections].map((c) => new Promise<void>((resolve) => c.socket.once('close', () => resolve()))));
    for (const connection of this.connections) connection.shutdown();
    const stopping = new ProxyError('SHUTTING_DOWN', 'cri-proxy is shutting down; subscribe again');
    for (const call of this.watches) call.interrupt(stopping);
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    await Promise.race([drained, expired]);
    clearTimeout(timer);
    for (const connection of this.connections) connection.socket.destroy();
    await closed;
    // Under socket activation the file is systemd's; a file another process serves was never bound.
    if (this.boundPath !== undefined) await fs.promises.rm(this.boundPath, { force: true });
  }

  private accept(socket: net.Socket): void {
    if (this.serving !== undefined) {
      this.admit(socket);
      return;
    }
    this.waiting.add(socket);
    socket.once('close', () => this.waiting.delete(socket));
    socket.on('error', () => undefined);
  }

  private admit(socket: net.Socket): void {
    if (socket.destroyed) return;
    const limits = this.options.limits;
    if (this.connections.size >= limits.maxConnections && !this.evictIdle()) {
      this.counters.limit('connections');
      socket.destroy();
      return;
    }
    const connection = new ClientConnection(socket, {
      limits,
      maxMessageBytes: this.options.maxMessageBytes,
      onRequest: (stream) => this.handleStream(stream),
      onLimit: this.counters.limit,
      onProtocolError: (error) => this.counters.protocolError('client', error),
      onObserverFault: this.counters.observerFault,
      onClosed: (c) => {
        this.connections.delete(c);
        this.counters.connections(this.connections.size);
      },
    });
    this.connections.add(connection);
    this.counters.connections(this.connections.size);
    // A connection accepted just as close() began still gets a graceful end.
    if (this.closing) connection.shutdown();
  }

  /** Makes room for a new connection by closing the longest-idle one; false if every one has calls. */
  private evictIdle(): boolean {
    let oldest: ClientConnection | undefined;
    for (const c of this.connections) {
      if (c.activeCalls === 0 && (oldest === undefined || c.idleSince < oldest.idleSince)) oldest = c;
    }
    if (oldest === undefined) return false;
    oldest.closeIdle('connections');
    this.connections.delete(oldest);
    return true;
  }

  private startIdleSweep(): void {
    const idle = this.options.limits.idleTimeoutMs;
    if (idle <= 0) return;
    this.idleSweep = setInterval(
      () => {
        const cutoff = Date.now() - idle;
        for (const c of this.connections) if (c.admitted && c.activeCalls === 0 && c.idleSince < cutoff) c.closeIdle('idleTimeout');
      },
      Math.min(1000, Math.max(10, idle / 4)),
    );
    this.idleSweep.unref();
  }

  private handleStream(stream: ClientStream): void {
    // Streams come only from connections admitted by serve().
    const { chain, env } = this.serving as Serving;
    const method = lookupMethod(stream.head.path);
    const call = new Call(stream, method, env);
    this.inFlight++;
    if (method.watch) this.watches.add(call);
    chain
      .runnerFor(method)(call)
      .then(
        () => this.callEnded(call),
        (err: unknown) => this.callEnded(call, err),
      );
  }

  private callEnded(call: Call, error?: unknown): void {
    this.inFlight--;
    this.watches.delete(call);
    try {
      call.finish(error);
    } catch (err) {
      this.options.log.error('failed to finish a call', { method: call.method.path, error: errorMessage(err) });
    }
  }
}

/** Binds `socketPath` (its directory created) and gives the file `mode`. */
async function bindSocketFile(listener: net.Server, socketPath: string, mode: number): Promise<void> {
  await fs.promises.mkdir(path.dirname(socketPath), { recursive: true, mode: 0o750 });
  await removeStaleSocket(socketPath);
  await listenOn(listener, socketPath);
  await fs.promises.chmod(socketPath, mode);
}

function listenOn(listener: net.Server, where: string | { fd: number }): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(where, () => {
      listener.off('error', reject);
      resolve();
    });
  });
}

/** A socket file nobody answers on is stale and replaced; one a live process serves is left alone. */
async function removeStaleSocket(socketPath: string): Promise<void> {
  let stat: fs.Stats;
  try {
    stat = await fs.promises.lstat(socketPath);
  } catch {
    return;
  }
  if (!stat.isSocket()) throw new Error(`${socketPath} exists and is not a socket; refusing to replace it`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) throw new Error(`another process is serving ${socketPath}; refusing to take it over`);
  await fs.promises.rm(socketPath, { force: true });
}
