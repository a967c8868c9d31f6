import { connectReading } from './socket-reads';
import type { Backend, BackendHealth, CallOptions, StreamEnd, StreamOptions, UnaryReply } from '../chain/backends';
import { ProxyError, errorMessage } from '../errors';
import type { Logger } from '../log';
import type { ConnectionError, StreamError } from './http2/frames';
import { RuntimeConnection } from './runtime-connection';
import type { LocalSettings } from './http2/local-settings';
import { callRuntime, streamRuntime } from './runtime-client';

export interface UpstreamOptions {
  readonly name: string;
  /** Unix socket path of the runtime. */
  readonly socketPath: string;
  readonly connectTimeoutMs: number;
  readonly maxMessageBytes: number;
  readonly log: Logger;
  /** Flow-control windows and header limit announced to the runtime; defaults suit a local runtime. */
  readonly settings?: Partial<LocalSettings>;
  /** Told about every HTTP/2 protocol error on the runtime's side (counted by the server). */
  readonly onProtocolError?: (error: ConnectionError | StreamError) => void;
}

const DEFAULT_SETTINGS: LocalSettings = {
  streamWindow: 1024 * 1024,
  connectionWindow: 16 * 1024 * 1024,
  maxHeaderListBytes: 1024 * 1024,
  // A runtime's header list of up to 1 MiB (large status details) may take 64 frames of the default size.
  maxContinuationFrames: 256,
};

/**
 * One multiplexed HTTP/2 connection to a runtime socket, opened on first use and again after it fails or the
 * runtime restarts: callers never see a stale connection, only UNAVAILABLE while the runtime is really gone.
 */
export class Upstream implements Backend {
  private current: RuntimeConnection | undefined;
  private health: BackendHealth = { up: false, lastError: undefined, lastErrorAt: undefined };
  private closed = false;
  private readonly settings: LocalSettings;

  constructor(readonly options: UpstreamOptions) {
    this.settings = { ...DEFAULT_SETTINGS, ...options.settings };
  }

  get name(): string {
    return this.options.name;
  }

  get address(): string {
    return `unix://${this.options.socketPath}`;
  }

  get status(): BackendHealth {
    return this.health;
  }

  /**
   * The connection new streams go on (a fresh one if there is none or the current one is going away), or the
   * error to end the call with when there can be none.
   */
  connection(): RuntimeConnection | ProxyError {
    if (this.closed) return new ProxyError('SHUTTING_DOWN', 'cri-proxy is shutting down');
    const existing = this.current;
    if (existing?.usable) return existing;
    try {
      return this.connect();
    } catch (err) {
      return this.unavailable(err);
    }
  }

  call(path: string, request: Buffer, options: number | CallOptions): Promise<UnaryReply> {
    return callRuntime(this, path, request, options);
  }

  stream(path: string, request: Buffer, options: StreamOptions, onMessage: (message: Buffer) => void | Promise<void>): Promise<StreamEnd> {
    return streamRuntime(this, path, request, options, onMessage);
  }

  /** A clear UNAVAILABLE error for a call that could not reach the runtime. */
  unavailable(cause: unknown): ProxyError {
    return new ProxyError('UPSTREAM_UNAVAILABLE', `runtime "${this.name}" at ${this.address} is unavailable: ${errorMessage(cause)}`, {
      cause,
    });
  }

  close(): void {
    this.closed = true;
    this.current?.close();
    this.current = undefined;
  }

  private connect(): RuntimeConnection {
    const { socketPath, connectTimeoutMs } = this.options;
    // The connection reads what arrives once it exists (nothing can arrive before).
    const reader: { connection?: RuntimeConnection } = {};
    const socket = connectReading(socketPath, (chunk) => reader.connection?.receive(chunk));
    let connected = false;
    const timer = setTimeout(() => {
      if (!connected) socket.destroy(new Error(`no connection within ${connectTimeoutMs} ms`));
    }, connectTimeoutMs);
    timer.unref();
    socket.once('connect', () => {
      connected = true;
      clearTimeout(timer);
      this.markUp();
    });
    // An idle connection must not keep the process alive on shutdown.
    socket.unref();
    const connection = new RuntimeConnection(socket, this.settings, {
      onClosed: (conn, error) => {
        clearTimeout(timer);
        if (this.current === conn) this.current = undefined;
        if (!this.closed && (connected || error)) this.markDown(error ?? new Error('connection closed'));
      },
      onProtocolError: (error) => this.options.onProtocolError?.(error),
    });
    reader.connection = connection;
    // The previous connection (going away) finishes its streams on its own.
    this.current = connection;
    return connection;
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
