/**
 * The HTTP side of the registry client: every request has a timeout (bounded further by the caller's deadline),
 * each registry takes at most `concurrency` requests at a time, and no answer is read past `maxBytes`. What is
 * asked of a registry, and how it is authorised, is a session's (session.ts).
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { rootCertificates } from 'node:tls';
import { errorMessage } from '../../errors';
import type { AuthFile } from './auth';
import { Semaphore } from './limiter';

/** How one registry is reached (the interceptor's `registries` entry, or the defaults). */
export interface RegistrySettings {
  /** Plain http instead of https. */
  readonly plainHttp: boolean;
  /** PEM certificates trusted for this registry besides the system's. */
  readonly ca: string | undefined;
  /** The node's own credentials (a docker config.json). */
  readonly auth: AuthFile | undefined;
}

export interface RegistryClientOptions {
  readonly settingsFor: (registry: string) => RegistrySettings;
  /** The longest one request may take. */
  readonly timeoutMs: number;
  /** Requests in flight to one registry at most. */
  readonly concurrency: number;
  /** Largest response body read (manifests, signature payloads, bundles). */
  readonly maxBytes?: number;
}

/** A registry could not be asked, or answered with something unusable. The message names the registry. */
export class RegistryError extends Error {
  override readonly name = 'RegistryError';
  constructor(
    readonly registry: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`registry ${registry}: ${message}`, options);
  }
}

export interface RegistryResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

const DEFAULT_MAX_BYTES = 4 * 1024 * 1024;

export class RegistryClient {
  private readonly limiters = new Map<string, Semaphore>();
  private readonly httpAgent: HttpAgent;
  private readonly httpsAgent: HttpsAgent;
  readonly maxBytes: number;

  constructor(private readonly options: RegistryClientOptions) {
    this.maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
    this.httpAgent = new HttpAgent({ keepAlive: true, maxSockets: options.concurrency });
    this.httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: options.concurrency });
  }

  /** How `registry` is reached. */
  settingsFor(registry: string): RegistrySettings {
    return this.options.settingsFor(registry);
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  /** One HTTP exchange, within a connection slot of the registry, the timeout and the deadline. */
  async send(
    registry: string,
    settings: RegistrySettings,
    url: URL,
    init: { method: string; headers: Record<string, string>; body?: string },
    deadline: number | undefined,
  ): Promise<RegistryResponse> {
    const left = deadline === undefined ? this.options.timeoutMs : Math.min(this.options.timeoutMs, deadline - Date.now());
    if (left <= 0) throw new RegistryError(registry, 'no time left for the request before the call deadline');
    const started = Date.now();
    let limiter = this.limiters.get(registry);
    if (limiter === undefined) {
      limiter = new Semaphore(this.options.concurrency);
      this.limiters.set(registry, limiter);
    }
    let release: () => void;
    try {
      release = await limiter.acquire(left);
    } catch (err) {
      throw new RegistryError(registry, `too busy: ${errorMessage(err)}`, { cause: err });
    }
    try {
      return await this.exchange(registry, settings, url, init, left - (Date.now() - started));
    } finally {
      release();
    }
  }

  private exchange(
    registry: string,
    settings: RegistrySettings,
    url: URL,
    init: { method: string; headers: Record<string, string>; body?: string },
    timeoutMs: number,
  ): Promise<RegistryResponse> {
    const secure = url.protocol === 'https:';
    const ca = secure && settings.ca !== undefined ? [...rootCertificates, settings.ca] : undefined;
    return new Promise<RegistryResponse>((resolve, reject) => {
      const fail = (message: string, cause?: unknown): void => reject(new RegistryError(registry, message, { cause }));
      const options = {
        method: init.method,
        headers: { 'user-agent': 'cri-proxy', ...init.headers },
        agent: secure ? this.httpsAgent : this.httpAgent,
        ...(ca === undefined ? {} : { ca }),
      };
      const req = (secure ? httpsRequest : httpRequest)(url, options, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > this.maxBytes) {
            req.destroy();
            fail(`${url.pathname}: answer larger than ${this.maxBytes} bytes`);
            return;
          }
          chunks.push(chunk);
        });
        res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.once('error', (err) => fail(`${url.pathname}: ${errorMessage(err)}`, err));
      });
      const timer = setTimeout(
        () => {
          req.destroy();
          fail(`no answer within ${Math.max(0, Math.round(timeoutMs))} ms`);
        },
        Math.max(0, timeoutMs),
      );
      req.once('close', () => clearTimeout(timer));
      req.once('error', (err) => fail(`cannot be reached at ${url.host}: ${errorMessage(err)}`, err));
      req.end(init.body);
    });
  }
}
