/**
 * Finds the signatures of one manifest digest in its repository, in the two layouts cosign writes: the classic
 * `sha256-<hex>.sig` tag (one simple-signing layer per signature, with annotations), and sigstore bundles attached
 * as OCI 1.1 referrers (found through the referrers API, or the referrers tag schema where a registry has none).
 */
import { errorMessage } from '../errors';
import { RegistryError, type RegistrySession } from './registry/client';

export const SIMPLE_SIGNING_MEDIA_TYPE = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
export const CERTIFICATE_ANNOTATION = 'dev.sigstore.cosign/certificate';
export const CHAIN_ANNOTATION = 'dev.sigstore.cosign/chain';
export const REKOR_BUNDLE_ANNOTATION = 'dev.sigstore.cosign/bundle';
/** Bundle media types, as artifact types of referrers: the current one and its older spelling. */
const BUNDLE_MEDIA_TYPE = /^application\/vnd\.dev\.sigstore\.bundle(\.v0\.\d+\+json|\+json;\s*version=0\.\d+)$/;

/** Signatures looked at per digest at most, per layout: a repository full of junk must not cost without end. */
const MAX_SIGNATURES = 32;

/** A classic cosign signature: the payload it signs and what its layer's annotations carry. */
export interface CosignSignature {
  readonly format: 'cosign';
  readonly payload: Buffer;
  /** The base64 signature as annotated. */
  readonly signature: string;
  readonly certificate: string | undefined;
  readonly chain: string | undefined;
  /** The Rekor bundle (signed entry timestamp and entry), JSON. */
  readonly rekorBundle: string | undefined;
}

/** A sigstore bundle (JSON), as fetched. */
export interface BundleSignature {
  readonly format: 'bundle';
  readonly json: unknown;
}

export type FoundSignature = CosignSignature | BundleSignature;

export interface Discovery {
  readonly signatures: readonly FoundSignature[];
  /** Registry failures met on the way (some signatures may still have been found). */
  readonly problems: readonly RegistryError[];
}

/** `sha256:abc` → `sha256-abc`, the tag form both schemes derive from a digest. */
export function digestTag(digest: string): string {
  const colon = digest.indexOf(':');
  return `${digest.slice(0, Math.min(colon, 32))}-${digest.slice(colon + 1, colon + 1 + 64)}`;
}

function list(value: unknown): Readonly<Record<string, unknown>>[] {
  return Array.isArray(value) ? value.filter((v): v is Record<string, unknown> => typeof v === 'object' && v !== null) : [];
}

function annotation(descriptor: Readonly<Record<string, unknown>>, key: string): string | undefined {
  const annotations = descriptor['annotations'];
  if (typeof annotations !== 'object' || annotations === null) return undefined;
  const value = (annotations as Record<string, unknown>)[key];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

async function cosignSignatures(session: RegistrySession, digest: string): Promise<CosignSignature[]> {
  const manifest = await session.manifest(`${digestTag(digest)}.sig`);
  if (manifest === undefined) return [];
  const layers = list(manifest.json['layers'])
    .filter((l) => l['mediaType'] === SIMPLE_SIGNING_MEDIA_TYPE)
    .slice(0, MAX_SIGNATURES);
  const found: CosignSignature[] = [];
  for (const layer of layers) {
    const signature = annotation(layer, SIGNATURE_ANNOTATION);
    const blobDigest = layer['digest'];
    if (signature === undefined || typeof blobDigest !== 'string') continue;
    const payload = await session.blob(blobDigest);
    if (payload === undefined) continue;
    found.push({
      format: 'cosign',
      payload,
      signature,
      certificate: annotation(layer, CERTIFICATE_ANNOTATION),
      chain: annotation(layer, CHAIN_ANNOTATION),
      rekorBundle: annotation(layer, REKOR_BUNDLE_ANNOTATION),
    });
  }
  return found;
}

async function bundleSignatures(session: RegistrySession, digest: string): Promise<BundleSignature[]> {
  let index = await session.referrers(digest);
  if (index === 'unsupported') {
    // The referrers tag schema: an index tagged with the digest, kept up to date by whoever attached the referrers.
    index = (await session.manifest(digestTag(digest), ['application/vnd.oci.image.index.v1+json']))?.json ?? {};
  }
  const referrers = list(index['manifests'])
    .filter((d) => typeof d['artifactType'] === 'string' && BUNDLE_MEDIA_TYPE.test(d['artifactType']))
    .slice(0, MAX_SIGNATURES);
  const found: BundleSignature[] = [];
  for (const referrer of referrers) {
    const referrerDigest = referrer['digest'];
    if (typeof referrerDigest !== 'string') continue;
    const manifest = await session.manifest(referrerDigest, ['application/vnd.oci.image.manifest.v1+json']);
    const [layer] = list(manifest?.json['layers']);
    const layerDigest = layer?.['digest'];
    if (typeof layerDigest !== 'string') continue;
    const blob = await session.blob(layerDigest);
    if (blob === undefined) continue;
    try {
      found.push({ format: 'bundle', json: JSON.parse(blob.toString('utf8')) as unknown });
    } catch {
      // Not JSON: not a bundle, whatever its artifact type says; it is no signature.
    }
  }
  return found;
}

/** Every signature of `digest` in the session's repository, in both layouts; registry failures are collected. */
export async function discoverSignatures(session: RegistrySession, digest: string): Promise<Discovery> {
  const problems: RegistryError[] = [];
  const collect = async <T>(find: Promise<T[]>): Promise<T[]> => {
    try {
      return await find;
    } catch (err) {
      problems.push(err instanceof RegistryError ? err : new RegistryError(session.registry, errorMessage(err), { cause: err }));
      return [];
    }
  };
  const [cosign, bundles] = await Promise.all([collect(cosignSignatures(session, digest)), collect(bundleSignatures(session, digest))]);
  return { signatures: [...cosign, ...bundles], problems };
}
