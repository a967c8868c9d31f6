/**
 * The verification engine: is this manifest digest, in this repository, signed the way this rule trusts? It knows
 * nothing of CRI calls or doors; the image policy asks it about a digest and gets a result.
 */
import type { SignedTarget } from '../policies/signature-claims';
import { checkSignature } from './check-signature';
import { discoverSignatures } from './discovery';
import { furthest, unverified, type Unverified, type VerificationResult } from './outcome';
import type { Credentials } from './registry/auth';
import { RegistryError, type RegistryClient, type RegistrySession } from './registry/client';
import type { RuleTrust } from './trust';

const INDEX_MEDIA_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);

/** The platform images are pulled for on this node, as OCI indexes name it. */
export interface Platform {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string;
}

const GO_ARCH: Readonly<Record<string, string>> = {
  x64: 'amd64',
  ia32: '386',
  arm64: 'arm64',
  arm: 'arm',
  ppc64: 'ppc64le',
  s390x: 's390x',
  riscv64: 'riscv64',
};

export function nodePlatform(): Platform {
  const architecture = GO_ARCH[process.arch] ?? process.arch;
  return architecture === 'arm' ? { os: 'linux', architecture, variant: 'v7' } : { os: 'linux', architecture };
}

export interface VerifyOptions {
  /** A pull's own credentials, used for its lookups only. */
  readonly credentials?: Credentials | undefined;
  /** Absolute deadline (ms since the epoch) of the call that asks. */
  readonly deadline?: number | undefined;
}

/** The manifest of `platform` in an index, as a runtime picks it (the variant preferred when it matches). */
function platformManifest(index: Readonly<Record<string, unknown>>, platform: Platform): string | undefined {
  const manifests = Array.isArray(index['manifests']) ? (index['manifests'] as unknown[]) : [];
  let fallback: string | undefined;
  for (const entry of manifests) {
    if (typeof entry !== 'object' || entry === null) continue;
    const { digest, platform: p } = entry as { digest?: unknown; platform?: { os?: unknown; architecture?: unknown; variant?: unknown } };
    if (typeof digest !== 'string' || p?.os !== platform.os || p.architecture !== platform.architecture) continue;
    if (p.variant === platform.variant) return digest;
    fallback ??= digest;
  }
  return fallback;
}

export class ImageVerifier {
  constructor(
    private readonly client: RegistryClient,
    private readonly platform: Platform = nodePlatform(),
  ) {}

  /**
   * Verifies `target.digest` in its repository against `trust`. A multi-platform image is verified as cosign signs
   * it: its index's signature vouches for every platform; failing that, the signature of the manifest this node
   * pulls from it is enough.
   */
  async verify(trust: RuleTrust, target: SignedTarget, options: VerifyOptions = {}): Promise<VerificationResult> {
    const session = this.client.session(target.registry, target.repository, options.credentials, options.deadline);
    const own = await this.verifyDigest(session, trust, target);
    if (own.ok || own.failure === 'registry-unavailable') return own;
    let child: string | undefined;
    try {
      const manifest = await session.manifest(target.digest);
      if (manifest !== undefined && INDEX_MEDIA_TYPES.has(manifest.mediaType)) child = platformManifest(manifest.json, this.platform);
    } catch (err) {
      return unverified('registry-unavailable', `${err instanceof RegistryError ? err.message : String(err)}; and ${own.detail}`);
    }
    if (child === undefined) return own;
    const platform = await this.verifyDigest(session, trust, { ...target, digest: child });
    if (platform.ok) return platform;
    return furthest(own, platform);
  }

  private async verifyDigest(session: RegistrySession, trust: RuleTrust, target: SignedTarget): Promise<VerificationResult> {
    const { signatures, problems } = await discoverSignatures(session, target.digest);
    let worst: Unverified | undefined;
    for (const signature of signatures) {
      for (const entry of trust.entries) {
        const result = checkSignature(signature, entry, target);
        if (result === undefined) continue;
        if (result.ok) return result;
        worst = furthest(worst, result);
      }
    }
    // What could not be read might have held the signature: the answer is "could not verify", not "unsigned".
    if (problems.length > 0) {
      const also = worst === undefined ? '' : `; and ${worst.detail}`;
      return unverified('registry-unavailable', `${problems.map((p) => p.message).join('; ')}${also}`);
    }
    return worst ?? unverified('no-signature', `no signature found for ${target.digest} in ${target.registry}/${target.repository}`);
  }
}
