/**
 * A small OCI distribution API client: manifests, blobs and referrers of one repository, read-only, with the
 * token flow of the registry's auth challenge. Every request has a timeout (bounded further by the caller's
 * deadline), each registry takes at most `concurrency` requests at a time, and content fetched by digest is
 * checked against that digest.
 */
import { createHash } from 'node:crypto';
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { rootCertificates } from 'node:tls';
import { DEFAULT_REGISTRY } from '../../policies/image-reference';
import { errorMessage } from '../../errors';
import { parseChallenge, type AuthFile, type Credentials } from './auth';
import { Semaphore } from './limiter';

export const MANIFEST_MEDIA_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
] as const;
const INDEX_MEDIA_TYPE = 'application/vnd.oci.image.index.v1+json';

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

export interface Manifest {
  /** The digest of the bytes as served (`sha256:<hex>`). */
  readonly digest: string;
  readonly mediaType: string;
  readonly body: Buffer;
  readonly json: Readonly<Record<string, unknown>>;
}

interface Response {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

const DEFAULT_MAX_BYTES = 4 * 1024 * 1024;
const MAX_REDIRECTS = 3;

/** The host the API of a registry is served on (Docker Hub's differs from the name images use). */
function apiHost(registry: string): string {
  return registry === DEFAULT_REGISTRY ? 'registry-1.docker.io' : registry;
}

function digestOf(body: Buffer, algorithm = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(body).digest('hex')}`;
}

function parseJsonObject(body: Buffer): Readonly<Record<string, unknown>> | undefined {
  try {
    const value = JSON.parse(body.toString('utf8')) as unknown;
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

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

  /**
   * Opens a session on one repository: its token and credentials live as long as it does. `credentials` (a pull's
   * own) replace the node's for this registry.
   */
  session(registry: string, repository: string, credentials: Credentials | undefined, deadline: number | undefined): RegistrySession {
    const settings = this.options.settingsFor(registry);
    return new RegistrySession(this, registry, repository, settings, credentials ?? settings.auth?.get(registry), deadline);
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
  ): Promise<Response> {
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
  ): Promise<Response> {
    const secure = url.protocol === 'https:';
    const ca = secure && settings.ca !== undefined ? [...rootCertificates, settings.ca] : undefined;
    return new Promise<Response>((resolve, reject) => {
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

/** Requests to one repository, with one set of credentials; a bearer token, once obtained, is reused. */
export class RegistrySession {
  private authorization: string | undefined;
  private readonly scheme: string;

  constructor(
    private readonly client: RegistryClient,
    readonly registry: string,
    readonly repository: string,
    private readonly settings: RegistrySettings,
    private readonly credentials: Credentials | undefined,
    private readonly deadline: number | undefined,
  ) {
    this.scheme = settings.plainHttp ? 'http' : 'https';
    if (credentials?.registryToken !== undefined) this.authorization = `Bearer ${credentials.registryToken}`;
  }

  /** A manifest or index by tag or digest; undefined if the registry has none. A digest is checked against the bytes. */
  async manifest(reference: string, accept: readonly string[] = MANIFEST_MEDIA_TYPES): Promise<Manifest | undefined> {
    const res = await this.get(`manifests/${reference}`, accept.join(', '));
    if (res.status === 404) return undefined;
    this.expectOk(res, `manifest ${reference}`);
    const byDigest = reference.includes(':');
    const algorithm = byDigest ? reference.slice(0, reference.indexOf(':')) : 'sha256';
    const digest = digestOf(res.body, algorithm);
    if (byDigest && digest !== reference)
      throw new RegistryError(this.registry, `manifest ${reference} does not match its digest (got ${digest})`);
    const json = parseJsonObject(res.body);
    if (json === undefined) throw new RegistryError(this.registry, `manifest ${reference} is not a JSON object`);
    const declared = typeof json['mediaType'] === 'string' ? json['mediaType'] : undefined;
    const header = res.headers['content-type']?.split(';')[0]?.trim();
    return { digest, mediaType: declared ?? header ?? '', body: res.body, json };
  }

  /** A blob by digest, checked against it; undefined if the registry has none. */
  async blob(digest: string): Promise<Buffer | undefined> {
    const res = await this.get(`blobs/${digest}`, '*/*');
    if (res.status === 404) return undefined;
    this.expectOk(res, `blob ${digest}`);
    const algorithm = digest.slice(0, digest.indexOf(':'));
    if (digestOf(res.body, algorithm) !== digest) throw new RegistryError(this.registry, `blob ${digest} does not match its digest`);
    return res.body;
  }

  /** The OCI 1.1 referrers index of a digest, or `unsupported` when the registry has no referrers API. */
  async referrers(digest: string): Promise<Readonly<Record<string, unknown>> | 'unsupported'> {
    const res = await this.get(`referrers/${digest}`, INDEX_MEDIA_TYPE);
    if (res.status === 404 || res.status === 405 || res.status === 400) return 'unsupported';
    this.expectOk(res, `referrers of ${digest}`);
    const type = res.headers['content-type']?.split(';')[0]?.trim();
    const json = parseJsonObject(res.body);
    if (type !== INDEX_MEDIA_TYPE || json === undefined) return 'unsupported';
    return json;
  }

  private expectOk(res: Response, what: string): void {
    if (res.status === 200) return;
    if (res.status === 401 || res.status === 403) throw new RegistryError(this.registry, `access to ${what} denied (HTTP ${res.status})`);
    throw new RegistryError(this.registry, `${what}: HTTP ${res.status}`);
  }

  private url(path: string): URL {
    return new URL(`${this.scheme}://${apiHost(this.registry)}/v2/${this.repository}/${path}`);
  }

  /** A GET with the session's authorization, answering one auth challenge and following redirects (blobs). */
  private async get(path: string, accept: string): Promise<Response> {
    let url = this.url(path);
    let challenged = false;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const sameHost = url.host === apiHost(this.registry);
      const headers: Record<string, string> = { accept };
      // Credentials go to the registry only, never to a storage backend it redirects to.
      if (sameHost && this.authorization !== undefined) headers['authorization'] = this.authorization;
      const res = await this.client.send(this.registry, this.settings, url, { method: 'GET', headers }, this.deadline);
      if (res.status === 401 && sameHost && !challenged) {
        challenged = true;
        await this.authenticate(res.headers['www-authenticate']);
        hop--;
        continue;
      }
      const location = res.headers.location;
      if ([301, 302, 303, 307, 308].includes(res.status) && location !== undefined) {
        url = new URL(location, url);
        continue;
      }
      return res;
    }
    throw new RegistryError(this.registry, `${path}: more than ${MAX_REDIRECTS} redirects`);
  }

  /** Answers a 401's challenge: basic credentials directly, or a bearer token from the realm. */
  private async authenticate(header: string | undefined): Promise<void> {
    const challenge = parseChallenge(header);
    const { username, password, identityToken } = this.credentials ?? {};
    const basic = username !== undefined ? `Basic ${Buffer.from(`${username}:${password ?? ''}`).toString('base64')}` : undefined;
    if (challenge === undefined) throw new RegistryError(this.registry, 'asks for authentication in a way that is not supported');
    if (challenge.scheme === 'basic') {
      if (basic === undefined) throw new RegistryError(this.registry, 'asks for credentials and none are configured');
      this.authorization = basic;
      return;
    }
    const realm = challenge.params.get('realm');
    if (realm === undefined) throw new RegistryError(this.registry, 'bearer challenge without a realm');
    const url = new URL(realm);
    const service = challenge.params.get('service');
    const scope = `repository:${this.repository}:pull`;
    let res: Response;
    if (identityToken !== undefined) {
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: identityToken, client_id: 'cri-proxy', scope });
      if (service !== undefined) form.set('service', service);
      const headers = { 'content-type': 'application/x-www-form-urlencoded' };
      res = await this.client.send(this.registry, this.settings, url, { method: 'POST', headers, body: form.toString() }, this.deadline);
    } else {
      if (service !== undefined) url.searchParams.set('service', service);
      url.searchParams.set('scope', scope);
      const headers: Record<string, string> = basic === undefined ? {} : { authorization: basic };
      res = await this.client.send(this.registry, this.settings, url, { method: 'GET', headers }, this.deadline);
    }
    if (res.status !== 200) throw new RegistryError(this.registry, `token endpoint ${url.host} refused (HTTP ${res.status})`);
    const json = parseJsonObject(res.body);
    const token = json?.['token'] ?? json?.['access_token'];
    if (typeof token !== 'string' || token === '') throw new RegistryError(this.registry, `token endpoint ${url.host} gave no token`);
    this.authorization = `Bearer ${token}`;
  }
}
