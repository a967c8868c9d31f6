import * as fs from 'node:fs';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as path from 'node:path';
import { errorMessage } from '../errors';
import type { Logger } from '../log';
import { acceptConnection } from './authority-shim';
import { announceShutdown, closeSession } from './graceful-close';
import { Call, type CallEnvironment } from './call';
import type { Chain } from './chain';
import { lookupMethod } from './method-table';
import type { Router } from './router';

export interface ProxyServerOptions {
  readonly socketPath: string;
  /** File mode of the socket, e.g. 0o660. */
  readonly socketMode: number;
  readonly maxMessageBytes: number;
  readonly log: Logger;
  readonly router: Router;
  readonly chain: Chain<Call>;
  /** Listen on this already-listening descriptor (socket activation) instead of binding `socketPath`. */
  readonly inheritedFd?: number | undefined;
}

/** How long a client gets to answer the shutdown announcement's PING: a unix socket's round trip is far less. */
const ANNOUNCE_TIMEOUT_MS = 250;

/**
 * The proxy's CRI endpoint: a unix socket speaking HTTP/2, every stream a call run through the chain. The
 * chain and router can be swapped at runtime (config reload); calls in flight keep the ones they started with.
 */
export class ProxyServer {
  private readonly listener: net.Server;
  private readonly h2: http2.Http2Server;
  private readonly sessions = new Set<http2.Http2Session>();
  private env: CallEnvironment;
  private chain: Chain<Call>;
  private inFlight = 0;
  private closing = false;

  constructor(private readonly options: ProxyServerOptions) {
    this.chain = options.chain;
    this.env = { maxMessageBytes: options.maxMessageBytes, log: options.log, router: options.router };
    this.h2 = http2.createServer({
      maxSessionMemory: Math.max(10, Math.ceil((options.maxMessageBytes * 2) / (1024 * 1024))),
      settings: { maxConcurrentStreams: 1000, initialWindowSize: 4 * 1024 * 1024 },
    });
    this.h2.on('session', (session: http2.ServerHttp2Session) => {
      this.sessions.add(session);
      session.setLocalWindowSize(8 * 1024 * 1024);
      session.on('error', (err: Error) => options.log.debug('client connection error', { error: err.message }));
      session.once('close', () => this.sessions.delete(session));
      // A connection accepted just before close() began still gets a graceful end.
      if (this.closing) session.close();
    });
    this.h2.on('stream', (stream, headers) => {
      this.handleStream(stream, headers);
    });
    this.listener = net.createServer((socket) => {
      acceptConnection(
        socket,
        (admitted) => this.h2.emit('connection', admitted),
        (err) => options.log.debug('client connection error', { error: err.message }),
      );
    });
  }

  get socketPath(): string {
    return this.options.socketPath;
  }

  get activeCalls(): number {
    return this.inFlight;
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
    await new Promise<void>((resolve, reject) => {
      this.listener.once('error', reject);
      this.listener.listen(socketPath, () => {
        this.listener.off('error', reject);
        resolve();
      });
    });
    await fs.promises.chmod(socketPath, this.options.socketMode);
  }

  /** Stops accepting, lets calls in flight finish within `graceMs`, then closes what is left. */
  async close(graceMs: number): Promise<void> {
    this.closing = true;
    // Closing our descriptor stops accepting; under socket activation systemd's copy stays open, and new
    // connections wait in its backlog for the next process.
    const closed = new Promise<void>((resolve) => this.listener.close(() => resolve()));
    await Promise.all([...this.sessions].map((s) => announceShutdown(s, Math.min(graceMs, ANNOUNCE_TIMEOUT_MS))));
    const drained = Promise.all([...this.sessions].map((s) => closeSession(s)));
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    await Promise.race([drained, expired]);
    clearTimeout(timer);
    for (const session of this.sessions) session.destroy();
    await closed;
    if (this.options.inheritedFd === undefined) await fs.promises.rm(this.options.socketPath, { force: true });
  }

  private handleStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    const rawPath = headers[':path'];
    const method = lookupMethod(typeof rawPath === 'string' ? rawPath : '');
    const call = new Call(stream, headers, method, this.env);
    this.inFlight++;
    this.chain
      .runnerFor(method)(call)
      .then(
        () => this.callEnded(call),
        (err: unknown) => this.callEnded(call, err),
      );
  }

  private callEnded(call: Call, error?: unknown): void {
    this.inFlight--;
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
