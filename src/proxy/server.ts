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
import { lookupMethod } from '../chain/method-table';
import type { Router } from './router';

/** What one client connection may use; every limit that triggers is counted in `cri_proxy_limit_exceeded_total`. */
export interface ConnectionLimits {
  /** Client connections held at once; at the limit the longest-idle one is closed, or the new one refused. */
  readonly maxConnections: number;
  /** Time from accept to the client's preface and SETTINGS. */
  readonly handshakeTimeoutMs: number;
  /** Bytes a client may send before its preface and SETTINGS are complete. */
  readonly handshakeMaxBytes: number;
  /** A connection without calls for this long is closed (GOAWAY, NO_ERROR); 0 never. */
  readonly idleTimeoutMs: number;
  /** Calls in flight per connection (SETTINGS_MAX_CONCURRENT_STREAMS); more are refused (REFUSED_STREAM). */
  readonly maxConcurrentStreams: number;
  /** Largest request header list (SETTINGS_MAX_HEADER_LIST_SIZE); a larger one gets RESOURCE_EXHAUSTED. */
  readonly maxHeaderListBytes: number;
  /** Request bytes held per connection for interceptors that read requests; beyond, RESOURCE_EXHAUSTED. */
  readonly maxHeldRequestBytes: number;
  /** Flow-control windows given to each client: per stream and per connection. */
  readonly streamWindowBytes: number;
  readonly connectionWindowBytes: number;
  /** Response bytes waiting for one client (unread, or beyond its windows); beyond, its connection is closed. */
  readonly maxHeldResponseBytes: number;
  /** Streams a client may reset before their call ends, or have refused as malformed, before it is disconnected. */
  readonly maxResetStreams: number;
  /** CONTINUATION frames in one header block. */
  readonly maxContinuationFrames: number;
  /** Entries in one SETTINGS frame. */
  readonly maxSettingsEntries: number;
  /** DATA, HEADERS and CONTINUATION frames in a row that carry nothing and end nothing. */
  readonly maxEmptyFrames: number;
}

export const DEFAULT_LIMITS: ConnectionLimits = Object.freeze({
  maxConnections: 128,
  handshakeTimeoutMs: 10_000,
  handshakeMaxBytes: 4096,
  idleTimeoutMs: 300_000,
  maxConcurrentStreams: 256,
  maxHeaderListBytes: 64 * 1024,
  maxHeldRequestBytes: 64 * 1024 * 1024,
  streamWindowBytes: 1024 * 1024,
  connectionWindowBytes: 16 * 1024 * 1024,
  maxHeldResponseBytes: 16 * 1024 * 1024,
  maxResetStreams: 500,
  maxContinuationFrames: 16,
  maxSettingsEntries: 32,
  maxEmptyFrames: 10,
});

export interface ProxyServerOptions {
  readonly socketPath: string;
  /** File mode of the socket, e.g. 0o660. */
  readonly socketMode: number;
  readonly maxMessageBytes: number;
  readonly log: Logger;
  readonly router: Router;
  readonly chain: Chain<Call>;
  readonly limits?: Partial<ConnectionLimits>;
  /** Where the data plane's own metrics go (limits, protocol errors, connections). */
  readonly registry?: Registry;
  /** Listen on this already-listening descriptor (socket activation) instead of binding `socketPath`. */
  readonly inheritedFd?: number | undefined;
}

/**
 * The proxy's CRI endpoint: a unix socket speaking HTTP/2 through the proxy's own frame relay, every stream a
 * call run through the chain. The chain and router can be swapped at runtime (config reload); calls in flight
 * keep the ones they started with.
 */
export class ProxyServer {
  private readonly listener: net.Server;
  private readonly connections = new Set<ClientConnection>();
  private readonly limits: ConnectionLimits;
  private env: CallEnvironment;
  private chain: Chain<Call>;
  private inFlight = 0;
  /** Calls on watch streams, ended at shutdown so their clients subscribe again to the next process. */
  private readonly watches = new Set<Call>();
  private idleSweep: NodeJS.Timeout | undefined;
  private readonly counters: DataPlaneMetrics;
  private closing = false;

  constructor(private readonly options: ProxyServerOptions) {
    this.chain = options.chain;
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.env = { maxMessageBytes: options.maxMessageBytes, log: options.log, router: options.router };
    this.counters = dataPlaneMetrics(options.registry ?? new Registry(), options.log);
    this.listener = net.createServer((socket) => this.accept(socket));
    this.listener.on('error', (err) => options.log.error('listener error', { error: err.message }));
  }

  get socketPath(): string {
    return this.options.socketPath;
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

  /** Swaps what new calls run through; calls in flight finish with what they started with. */
  reconfigure(chain: Chain<Call>, router: Router, log: Logger): void {
    this.chain = chain;
    this.env = { ...this.env, router, log };
  }

  async listen(): Promise<void> {
    const inheritedFd = this.options.inheritedFd;
    if (inheritedFd !== undefined) {
      // systemd made the socket (path, mode, owner) and keeps it: nothing here touches the file.
      await new Promise<void>((resolve, reject) => {
        this.listener.once('error', reject);
        this.listener.listen({ fd: inheritedFd }, () => {
          this.listener.off('error', reject);
          resolve();
        });
      });
      return;
    }
    const socketPath = this.options.socketPath;
    await fs.promises.mkdir(path.dirname(socketPath), { recursive: true, mode: 0o750 });
    await removeStaleSocket(socketPath);
    await this.listenOn(socketPath);
    await fs.promises.chmod(socketPath, this.options.socketMode);
    this.startIdleSweep();
  }

  private listenOn(where: string | { fd: number }): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.listener.once('error', reject);
      this.listener.listen(where, () => {
        this.listener.off('error', reject);
        resolve();
      });
    });
  }

  /** Stops accepting, lets calls in flight finish within `graceMs`, then closes what is left. */
  async close(graceMs: number): Promise<void> {
    this.closing = true;
    clearInterval(this.idleSweep);
    // Closing our descriptor stops accepting; under socket activation systemd's copy stays open, and new
    // connections wait in its backlog for the next process.
    const closed = new Promise<void>((resolve) => this.listener.close(() => resolve()));
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
    if (this.options.inheritedFd === undefined) await fs.promises.rm(this.options.socketPath, { force: true });
  }

  private accept(socket: net.Socket): void {
    if (this.connections.size >= this.limits.maxConnections && !this.evictIdle()) {
      this.counters.limit('connections');
      socket.destroy();
      return;
    }
    const limits = this.limits;
    const connection = new ClientConnection(socket, {
      settings: {
        streamWindow: limits.streamWindowBytes,
        connectionWindow: limits.connectionWindowBytes,
        maxHeaderListBytes: limits.maxHeaderListBytes,
        maxConcurrentStreams: limits.maxConcurrentStreams,
        maxContinuationFrames: limits.maxContinuationFrames,
        maxSettingsEntries: limits.maxSettingsEntries,
        maxEmptyFrames: limits.maxEmptyFrames,
      },
      maxMessageBytes: this.options.maxMessageBytes,
      maxHeldRequestBytes: limits.maxHeldRequestBytes,
      maxHeldResponseBytes: limits.maxHeldResponseBytes,
      maxResetStreams: limits.maxResetStreams,
      handshakeTimeoutMs: limits.handshakeTimeoutMs,
      handshakeMaxBytes: limits.handshakeMaxBytes,
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
    const idle = this.limits.idleTimeoutMs;
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
    const method = lookupMethod(stream.head.path);
    const call = new Call(stream, method, this.env);
    this.inFlight++;
    if (method.watch) this.watches.add(call);
    this.chain
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
      this.env.log.error('failed to finish a call', { method: call.method.path, error: errorMessage(err) });
    }
  }
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
