/**
 * A small OCI distribution API client: manifests, blobs and referrers of one repository, read-only, with the
 * token flow of the registry's auth challenge. Content fetched by digest is checked against that digest.
 */
import { createHash } from 'node:crypto';
import { DEFAULT_REGISTRY } from '../../policies/image-reference';
import { isRecord } from '../../values';
import { parseChallenge, type Credentials } from './auth';
import { RegistryError, type RegistryClient, type RegistryResponse, type RegistrySettings } from './client';

export const MANIFEST_MEDIA_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
] as const;
const INDEX_MEDIA_TYPE = 'application/vnd.oci.image.index.v1+json';

const MAX_REDIRECTS = 3;

export interface Manifest {
  /** The digest of the bytes as served (`sha256:<hex>`). */
  readonly digest: string;
  readonly mediaType: string;
  readonly body: Buffer;
  readonly json: Readonly<Record<string, unknown>>;
}

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
    return isRecord(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Requests to one repository, with one set of credentials; a bearer token, once obtained, is reused. */
export class RegistrySession {
  private authorization: string | undefined;
  private readonly scheme: string;
  private readonly settings: RegistrySettings;
  private readonly credentials: Credentials | undefined;

  /** `credentials` (a pull's own) replace the node's for this registry. */
  constructor(
    private readonly client: RegistryClient,
    readonly registry: string,
    readonly repository: string,
    credentials: Credentials | undefined,
    private readonly deadline: number | undefined,
  ) {
    this.settings = client.settingsFor(registry);
    this.credentials = credentials ?? this.settings.auth?.get(registry);
    this.scheme = this.settings.plainHttp ? 'http' : 'https';
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

  private expectOk(res: RegistryResponse, what: string): void {
    if (res.status === 200) return;
    if (res.status === 401 || res.status === 403) throw new RegistryError(this.registry, `access to ${what} denied (HTTP ${res.status})`);
    throw new RegistryError(this.registry, `${what}: HTTP ${res.status}`);
  }

  private url(path: string): URL {
    return new URL(`${this.scheme}://${apiHost(this.registry)}/v2/${this.repository}/${path}`);
  }

  /** A GET with the session's authorization, answering one auth challenge and following redirects (blobs). */
  private async get(path: string, accept: string): Promise<RegistryResponse> {
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
    let res: RegistryResponse;
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
