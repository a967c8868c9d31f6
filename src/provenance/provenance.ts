/**
 * Image provenance as one service: the registry client, the verification engine and the cache of verified
 * digests. What the image policy (and `cri-proxy policy verify`) talk to.
 */
import { DEFAULT_REGISTRY } from '../policies/image-reference';
import type { SignedTarget } from '../policies/signature-claims';
import { unverified, type VerificationResult } from './outcome';
import { readAuthFile, registryKey, type AuthFile, type Credentials } from './registry/auth';
import { RegistryClient, RegistryError, type RegistrySettings } from './registry/client';
import { RegistrySession } from './registry/session';
import type { RuleTrust } from './trust';
import { cacheKey, VerifiedCache } from './verified-cache';
import { ImageVerifier, type Platform } from './verifier';
import { readFileSync } from 'node:fs';

/** How one registry is reached, as configured (`registries.<host>`). */
export interface RegistryConfig {
  readonly plainHttp: boolean;
  readonly caFile?: string | undefined;
  readonly authFile?: string | undefined;
}

export interface ProvenanceOptions {
  readonly registries: Readonly<Record<string, RegistryConfig>>;
  /** Credentials for every registry without an `authFile` of its own. */
  readonly authFile?: string | undefined;
  readonly requestTimeoutMs: number;
  readonly concurrency: number;
  /** Where verified digests are kept across restarts; undefined: in memory only. */
  readonly cacheFile: string | undefined;
  readonly cacheSize: number;
  readonly onCacheError: (problem: string) => void;
  readonly platform?: Platform;
}

export interface VerifyRequest {
  readonly trust: RuleTrust;
  readonly target: SignedTarget;
  readonly credentials?: Credentials | undefined;
  readonly deadline?: number | undefined;
  /** Dry runs (`policy check`, `policy verify`) read the cache but add nothing to it. */
  readonly remember?: boolean;
}

export interface VerifyAnswer {
  readonly result: VerificationResult;
  /** Answered from the cache of verified digests, without the registry. */
  readonly cached: boolean;
}

/** The settings of every configured registry, files read (and so checked) now; other registries get defaults. */
export function registrySettings(options: Pick<ProvenanceOptions, 'registries' | 'authFile'>): (registry: string) => RegistrySettings {
  const shared: AuthFile | undefined = options.authFile === undefined ? undefined : readAuthFile(options.authFile);
  const byHost = new Map<string, RegistrySettings>();
  for (const [host, config] of Object.entries(options.registries)) {
    byHost.set(registryKey(host), {
      plainHttp: config.plainHttp,
      ca: config.caFile === undefined ? undefined : readFileSync(config.caFile, 'utf8'),
      auth: config.authFile === undefined ? shared : readAuthFile(config.authFile),
    });
  }
  const fallback: RegistrySettings = { plainHttp: false, ca: undefined, auth: shared };
  return (registry) =>
    byHost.get(registry.toLowerCase()) ?? (registry === DEFAULT_REGISTRY ? byHost.get('docker.io') : undefined) ?? fallback;
}

export class Provenance {
  private readonly client: RegistryClient;
  private readonly verifier: ImageVerifier;
  private readonly cache: VerifiedCache;
  private readonly inFlight = new Map<string, Promise<VerificationResult>>();

  constructor(options: ProvenanceOptions) {
    this.client = new RegistryClient({
      settingsFor: registrySettings(options),
      timeoutMs: options.requestTimeoutMs,
      concurrency: options.concurrency,
    });
    this.verifier = new ImageVerifier(this.client, options.platform);
    this.cache = new VerifiedCache({ file: options.cacheFile, max: options.cacheSize, onError: options.onCacheError });
  }

  /** Verifies a digest: from the cache, else online (one verification at a time per digest and trust). */
  async verify(request: VerifyRequest): Promise<VerifyAnswer> {
    const { trust, target } = request;
    const key = cacheKey(trust.fingerprint, `${target.registry}/${target.repository}`, target.digest);
    const hit = this.cache.get(key);
    if (hit !== undefined)
      return { result: { ok: true, signer: hit.signer, signedDigest: hit.signedDigest, format: hit.format }, cached: true };
    // A pull's own credentials may see what the node's cannot: such a lookup is not shared with others.
    const shareable = request.credentials === undefined;
    let pending = shareable ? this.inFlight.get(key) : undefined;
    if (pending === undefined) {
      pending = this.verifier.verify(trust, target, { credentials: request.credentials, deadline: request.deadline });
      if (shareable) {
        this.inFlight.set(key, pending);
        void pending.finally(() => this.inFlight.delete(key)).catch(() => undefined);
      }
    }
    const result = await pending;
    if (result.ok && request.remember !== false) {
      this.cache.set(key, {
        signer: result.signer,
        signedDigest: result.signedDigest,
        format: result.format,
        verifiedAt: new Date().toISOString(),
      });
    }
    return { result, cached: false };
  }

  /**
   * Verifies what a name denotes at its registry now: its digest, or the digest its tag names (resolved first).
   * `digest` is undefined when the tag could not be resolved.
   */
  async verifyName(
    trust: RuleTrust,
    name: Omit<SignedTarget, 'digest'> & { readonly tag?: string | undefined; readonly digest?: string | undefined },
    options: Omit<VerifyRequest, 'trust' | 'target'> = {},
  ): Promise<VerifyAnswer & { readonly digest: string | undefined }> {
    const repository = { registry: name.registry, repository: name.repository };
    let digest = name.digest;
    if (digest === undefined) {
      const resolved = await this.resolve(repository, name.tag ?? 'latest', options.credentials, options.deadline);
      if (!('digest' in resolved)) return { result: resolved, cached: false, digest: undefined };
      digest = resolved.digest;
    }
    return { ...(await this.verify({ ...options, trust, target: { ...repository, digest } })), digest };
  }

  /** The digest a tag names at the registry now. A registry that cannot be asked gives a `registry-unavailable` result. */
  async resolve(
    target: Omit<SignedTarget, 'digest'>,
    tag: string,
    credentials: Credentials | undefined,
    deadline: number | undefined,
  ): Promise<{ readonly digest: string } | VerificationResult> {
    const session = new RegistrySession(this.client, target.registry, target.repository, credentials, deadline);
    try {
      const manifest = await session.manifest(tag);
      if (manifest !== undefined) return { digest: manifest.digest };
      return unverified('registry-unavailable', `registry ${target.registry}: no image ${target.repository}:${tag}`);
    } catch (err) {
      return unverified('registry-unavailable', err instanceof RegistryError ? err.message : String(err));
    }
  }

  /** Entries in the cache of verified digests. */
  get cacheSize(): number {
    return this.cache.size;
  }

  async close(): Promise<void> {
    await this.cache.flush();
    this.client.close();
  }
}
