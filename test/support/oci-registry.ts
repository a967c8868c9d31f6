/**
 * Writing to an OCI registry the way pushing tools do (blob uploads, manifest PUTs), for tests that lay images and
 * signatures out in a real registry. Plain http on loopback only.
 */
import { createHash } from 'node:crypto';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_EMPTY = 'application/vnd.oci.empty.v1+json';

export interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly annotations?: Readonly<Record<string, string>>;
  readonly artifactType?: string;
  readonly platform?: { readonly os: string; readonly architecture: string };
}

export function sha256(bytes: Buffer | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export class OciRegistry {
  constructor(readonly host: string) {}

  async pushBlob(repository: string, bytes: Buffer | string, mediaType = 'application/octet-stream'): Promise<Descriptor> {
    const body = Buffer.from(bytes);
    const digest = sha256(body);
    const start = await fetch(`http://${this.host}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
    if (start.status !== 202) throw new Error(`blob upload to ${repository}: HTTP ${start.status}`);
    const location = new URL(start.headers.get('location') ?? '', `http://${this.host}`);
    location.searchParams.set('digest', digest);
    const put = await fetch(location, { method: 'PUT', body, headers: { 'content-type': 'application/octet-stream' } });
    if (put.status !== 201) throw new Error(`blob ${digest} to ${repository}: HTTP ${put.status} ${await put.text()}`);
    return { mediaType, digest, size: body.length };
  }

  /** PUTs a manifest or index under `reference` (a tag, or its digest); returns its descriptor. */
  async pushManifest(repository: string, reference: string | undefined, manifest: object, mediaType = OCI_MANIFEST): Promise<Descriptor> {
    const body = Buffer.from(JSON.stringify(manifest));
    const digest = sha256(body);
    const res = await fetch(`http://${this.host}/v2/${repository}/manifests/${reference ?? digest}`, {
      method: 'PUT',
      body,
      headers: { 'content-type': mediaType },
    });
    if (res.status !== 201) throw new Error(`manifest ${reference ?? digest} to ${repository}: HTTP ${res.status} ${await res.text()}`);
    return { mediaType, digest, size: body.length };
  }

  /** The manifest a tag names, as JSON; undefined if there is none. */
  async manifest(repository: string, reference: string): Promise<Record<string, unknown> | undefined> {
    const res = await fetch(`http://${this.host}/v2/${repository}/manifests/${reference}`, {
      headers: { accept: `${OCI_MANIFEST}, ${OCI_INDEX}` },
    });
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw new Error(`manifest ${reference} of ${repository}: HTTP ${res.status}`);
    return (await res.json()) as Record<string, unknown>;
  }

  /**
   * A small single-platform image: a config naming `marker` (so each call gives another digest) and one layer.
   * Tagged `tag`; returns the manifest's descriptor.
   */
  async pushImage(repository: string, tag: string, marker: string, platform = { os: 'linux', architecture: 'amd64' }): Promise<Descriptor> {
    const layer = await this.pushBlob(repository, `layer of ${marker}`, 'application/vnd.oci.image.layer.v1.tar');
    const config = await this.pushBlob(
      repository,
      JSON.stringify({ ...platform, config: { Labels: { marker } }, rootfs: { type: 'layers', diff_ids: [layer.digest] } }),
      OCI_CONFIG,
    );
    return this.pushManifest(repository, tag, { schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: [layer] });
  }

  /** A multi-platform image: one manifest per platform, and an index of them tagged `tag`. */
  async pushIndex(
    repository: string,
    tag: string,
    marker: string,
    platforms: readonly { os: string; architecture: string }[],
  ): Promise<{ index: Descriptor; manifests: Descriptor[] }> {
    const manifests: Descriptor[] = [];
    for (const platform of platforms) {
      const manifest = await this.pushImage(repository, `${tag}-${platform.architecture}`, `${marker} ${platform.architecture}`, platform);
      manifests.push({ ...manifest, platform });
    }
    const index = await this.pushManifest(repository, tag, { schemaVersion: 2, mediaType: OCI_INDEX, manifests }, OCI_INDEX);
    return { index, manifests };
  }
}
