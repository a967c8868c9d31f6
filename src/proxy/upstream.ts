import * as http2 from 'node:http2';
import * as net from 'node:net';
import { ProxyError, errorMessage } from '../errors';
import type { Logger } from '../log';

export interface UpstreamOptions {
  readonly name: string;
  /** Unix socket path of the runtime. */
  readonly socketPath: string;
  readonly connectTimeoutMs: number;
  readonly maxMessageBytes: number;
  readonly log: Logger;
}

export interface UpstreamHealth {
  readonly up: boolean;
  readonly lastError: string | undefined;
  readonly lastErrorAt: number | undefined;
}

/**
 * One multiplexed HTTP/2 connection to a runtime socket, opened on first use and again after it fails or the
 * runtime restarts: callers never see a stale session, only UNAVAILABLE while the runtime is really gone.
 */
export class Upstream {
  private session: http2.ClientHttp2Session | undefined;
  private connected = false;
  private health: { up: boolean; lastError: string | undefined; lastErrorAt: number | undefined } = {
    up: false,
    lastError: undefined,
    lastErrorAt: undefined,
  };
  private closed = false;

  constructor(readonly options: UpstreamOptions) {}

  get name(): string {
    return this.options.name;
  }

  get address(): string {
    return `unix://${this.options.socketPath}`;
  }

  get status(): UpstreamHealth {
    return this.health;
  }

  /** Starts a call; the stream reports connection failures through its 'error' event. */
  request(headers: http2.OutgoingHttpHeaders): http2.ClientHttp2Stream {
    if (this.closed) throw new ProxyError('SHUTTING_DOWN', 'cri-proxy is shutting down');
    return this.currentSession().request(headers, { endStream: false });
  }

  /** Turns a stream error that happened before any response into a clear UNAVAILABLE error. */
  unavailable(cause: unknown): ProxyError {
    return new ProxyError(
      'UPSTREAM_UNAVAILABLE',
      `runtime "${this.name}" at ${this.address} is unavailable: ${this.health.lastError ?? errorMessage(cause)}`,
      { cause },
    );
  }

  close(): void {
    this.closed = true;
    this.session?.close();
    this.session = undefined;
  }

  private currentSession(): http2.ClientHttp2Session {
    const existing = this.session;
    if (existing && !existing.closed && !existing.destroyed) return existing;
    return this.connect();
  }

  private connect(): http2.ClientHttp2Session {
    const { socketPath, connectTimeoutMs, maxMessageBytes } = this.options;
    this.connected = false;
    const session = http2.connect('http://localhost', {
      createConnection: () => net.connect(socketPath),
      // Headroom over one message so flow control never stalls a maximal message.
      settings: { initialWindowSize: 4 * 1024 * 1024, maxHeaderListSize: 64 * 1024 },
      maxSessionMemory: Math.max(10, Math.ceil((maxMessageBytes * 2) / (1024 * 1024))),
      peerMaxConcurrentStreams: 1000,
    });
    this.session = session;
    const timer = setTimeout(() => {
      if (!this.connected) session.destroy(new Error(`no connection within ${connectTimeoutMs} ms`));
    }, connectTimeoutMs);
    timer.unref();
    session.once('connect', () => {
      clearTimeout(timer);
      this.connected = true;
      session.setLocalWindowSize(8 * 1024 * 1024);
      this.markUp();
    });
    session.on('error', (err: Error) => {
      this.markDown(err);
    });
    session.once('goaway', () => {
      // The runtime is going away (restart): new calls must open a fresh connection.
      if (this.session === session) this.session = undefined;
    });
    session.once('close', () => {
      clearTimeout(timer);
      if (this.session === session) this.session = undefined;
      if (!this.closed && this.connected) this.markDown(new Error('connection closed'));
    });
    // An idle connection must not keep the process alive on shutdown.
    session.unref();
    return session;
  }

  private markUp(): void {
    if (!this.health.up) this.options.log.info('runtime connected', { backend: this.name, address: this.address });
    this.health = { ...this.health, up: true };
  }

  private markDown(err: Error): void {
    const wasUp = this.health.up;
    this.health = { up: false, lastError: err.message, lastErrorAt: Date.now() };
    if (wasUp) this.options.log.warn('runtime connection lost', { backend: this.name, error: err.message });
  }
}
