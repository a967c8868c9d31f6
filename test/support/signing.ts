/**
 * Signing images for tests with real tooling: keys made per run with node:crypto, sigstore bundles and Fulcio
 * certificates made with @sigstore/sign against @sigstore/mock's Fulcio, Rekor and timestamp authority (served on
 * loopback), and a trusted root built for them. Signatures are laid out in the registry exactly as cosign lays
 * them out: the classic `sha256-<hex>.sig` tag, and bundles as OCI 1.1 referrers with the referrers tag schema.
 */
import { createHash, generateKeyPairSync, sign as signData, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { bundleToJSON } from '@sigstore/bundle';
import { toSignedEntity } from '@sigstore/verify';
import {
  fulcioHandler,
  initializeCA,
  initializeCTLog,
  initializeTLog,
  initializeTSA,
  rekorHandler,
  tsaHandler,
  type HandlerFn,
} from '@sigstore/mock';
import { DSSEBundleBuilder, FulcioSigner, MessageSignatureBundleBuilder, RekorWitness, TSAWitness, type Signer } from '@sigstore/sign';
import { OCI_CONFIG, OCI_EMPTY, OCI_INDEX, OCI_MANIFEST, type Descriptor, type OciRegistry } from './oci-registry';

export type KeyType = 'p256' | 'p384' | 'rsa' | 'ed25519';

export interface SigningKey {
  readonly type: KeyType;
  readonly privateKey: KeyObject;
  /** The public key as a PEM file holds it. */
  readonly publicPem: string;
}

export function generateKey(type: KeyType = 'p256'): SigningKey {
  const pair =
    type === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : type === 'ed25519'
        ? generateKeyPairSync('ed25519')
        : generateKeyPairSync('ec', { namedCurve: type === 'p384' ? 'P-384' : 'P-256' });
  return { type, privateKey: pair.privateKey, publicPem: pair.publicKey.export({ format: 'pem', type: 'spki' }).toString() };
}

/** Signs as cosign does with such a key: ECDSA with the curve's hash, RSA PKCS#1 v1.5 with SHA-256, pure Ed25519. */
export function signWithKey(key: SigningKey, data: Buffer): Buffer {
  const hash = key.type === 'ed25519' ? null : key.type === 'p384' ? 'sha384' : 'sha256';
  return signData(hash, data, key.privateKey);
}

/** cosign's simple-signing payload, byte for byte as its Go code marshals it. */
export function simpleSigningPayload(dockerReference: string, digest: string): Buffer {
  return Buffer.from(
    JSON.stringify({
      critical: {
        identity: { 'docker-reference': dockerReference },
        image: { 'docker-manifest-digest': digest },
        type: 'cosign container image signature',
      },
      optional: null,
    }),
  );
}

/** The in-toto statement cosign signs into a bundle for an image. */
export function signatureStatement(digest: string, predicateType = 'https://sigstore.dev/cosign/sign/v1'): Buffer {
  const [algorithm = 'sha256', hex = ''] = digest.split(':');
  return Buffer.from(
    JSON.stringify({ _type: 'https://in-toto.io/Statement/v1', subject: [{ digest: { [algorithm]: hex } }], predicateType, predicate: {} }),
  );
}

export function digestTag(digest: string): string {
  return digest.replace(':', '-');
}

export interface CosignLayer {
  readonly payload: Buffer;
  readonly annotations: Readonly<Record<string, string>>;
}

/**
 * Adds a signature layer to the `sha256-<hex>.sig` image of `digest`, as cosign does (signing again appends): the
 * payload as a blob, its annotations on the layer, a config whose diff_ids are the layers.
 */
export async function attachCosignSignature(registry: OciRegistry, repository: string, digest: string, layer: CosignLayer): Promise<void> {
  const tag = `${digestTag(digest)}.sig`;
  const existing = await registry.manifest(repository, tag);
  const layers = Array.isArray(existing?.['layers']) ? (existing['layers'] as Descriptor[]) : [];
  const payload = await registry.pushBlob(repository, layer.payload, 'application/vnd.dev.cosign.simplesigning.v1+json');
  const all = [...layers, { ...payload, annotations: layer.annotations }];
  const zero = '0001-01-01T00:00:00Z';
  const config = await registry.pushBlob(
    repository,
    JSON.stringify({
      architecture: '',
      created: zero,
      history: all.map(() => ({ created: zero })),
      os: '',
      rootfs: { type: 'layers', diff_ids: all.map((l) => l.digest) },
      config: {},
    }),
    OCI_CONFIG,
  );
  await registry.pushManifest(repository, tag, { schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: all });
}

/** Signs `digest` with a key as `cosign sign --key` does, and pushes the signature. */
export async function cosignSignWithKey(
  registry: OciRegistry,
  repository: string,
  digest: string,
  key: SigningKey,
  payload: Buffer = simpleSigningPayload(`${registry.host}/${repository}`, digest),
): Promise<void> {
  const signature = signWithKey(key, payload).toString('base64');
  await attachCosignSignature(registry, repository, digest, { payload, annotations: { 'dev.cosignproject.cosign/signature': signature } });
}

/**
 * Attaches a sigstore bundle to `digest` as cosign does with the new bundle format: the bundle blob, a referrer
 * manifest with `subject`, and (the registry having no referrers API) the referrers tag schema's index.
 */
export async function attachBundle(registry: OciRegistry, repository: string, subject: Descriptor, bundle: unknown): Promise<void> {
  const type = 'application/vnd.dev.sigstore.bundle.v0.3+json';
  const blob = await registry.pushBlob(repository, JSON.stringify(bundle), type);
  const empty = await registry.pushBlob(repository, '{}', OCI_EMPTY);
  const referrer = await registry.pushManifest(repository, undefined, {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: type,
    config: empty,
    layers: [{ ...blob, annotations: { 'org.opencontainers.image.title': `${digestTag(blob.digest)}.sigstore.json` } }],
    subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
    annotations: {
      'dev.sigstore.bundle.content': 'dsse-envelope',
      'dev.sigstore.bundle.predicateType': 'https://sigstore.dev/cosign/sign/v1',
    },
  });
  const tag = digestTag(subject.digest);
  const existing = await registry.manifest(repository, tag);
  const manifests = Array.isArray(existing?.['manifests']) ? (existing['manifests'] as Descriptor[]) : [];
  await registry.pushManifest(
    repository,
    tag,
    { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [...manifests, { ...referrer, artifactType: type }] },
    OCI_INDEX,
  );
}

/** A key-signed bundle, as `cosign sign --key … --new-bundle-format --tlog-upload=false` makes one. */
export async function keyBundle(key: SigningKey, statement: Buffer): Promise<unknown> {
  const signer: Signer = {
    sign: (data) => Promise.resolve({ signature: signWithKey(key, data), key: { $case: 'publicKey', publicKey: key.publicPem } }),
  };
  const bundle = await new DSSEBundleBuilder({ signer, witnesses: [] }).create({ data: statement, type: 'application/vnd.in-toto+json' });
  return bundleToJSON(bundle);
}

export interface Identity {
  readonly issuer: string;
  readonly subject: string;
}

function keyPair(): { publicKey: KeyObject; privateKey: KeyObject } {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' });
}

/** An unsigned OIDC token: the mock Fulcio reads its claims without checking a signature. */
function identityToken(identity: Identity): string {
  const part = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'none' })}.${part({ iss: identity.issuer, sub: identity.subject, aud: 'sigstore' })}.`;
}

/**
 * A private sigstore: Fulcio (with a CT log), Rekor and a timestamp authority from @sigstore/mock on a loopback
 * port, and the trusted root that vouches for them. `expiredFulcio` issues certificates that expired an hour ago.
 */
export class MockSigstore {
  private constructor(
    private readonly server: Server,
    private readonly base: string,
    private readonly root: object,
  ) {}

  static async start(): Promise<MockSigstore> {
    const handlers = new Map<string, HandlerFn>();
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const handler = handlers.get(req.url ?? '');
        if (handler === undefined) {
          res.writeHead(404).end();
          return;
        }
        handler(Buffer.concat(chunks).toString('utf8')).then(
          (answer) => {
            res.writeHead(answer.statusCode, { 'content-type': answer.contentType ?? 'text/plain' }).end(answer.response);
          },
          (err: unknown) => {
            res.writeHead(500).end(String(err));
          },
        );
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const ctlog = await initializeCTLog(keyPair());
    const ca = await initializeCA(keyPair(), ctlog);
    const past = await initializeCA(keyPair(), ctlog, new Date(Date.now() - 60 * 60 * 1000));
    // Checkpoints name the log by its URL, which the trusted root must give.
    const tlog = await initializeTLog(base, keyPair());
    const tsa = await initializeTSA(keyPair());
    handlers.set('/api/v2/signingCert', fulcioHandler(ca).fn);
    handlers.set('/expired/api/v2/signingCert', fulcioHandler(past).fn);
    handlers.set('/api/v1/log/entries', rekorHandler(tlog).fn);
    handlers.set('/api/v1/timestamp', tsaHandler(tsa).fn);
    const start = new Date(Date.now() - 2 * 60 * 60 * 1000).toISOString();
    const key = (rawBytes: Buffer, keyId: Buffer): object => ({
      baseUrl: base,
      hashAlgorithm: 'SHA2_256',
      publicKey: { rawBytes: rawBytes.toString('base64'), keyDetails: 'PKIX_ECDSA_P256_SHA_256', validFor: { start } },
      logId: { keyId: keyId.toString('base64') },
    });
    const authority = (certificates: ArrayBufferView[]): object => ({
      subject: { organization: 'sigstore.mock', commonName: 'sigstore' },
      uri: base,
      certChain: {
        certificates: certificates.map((c) => ({ rawBytes: Buffer.from(c.buffer, c.byteOffset, c.byteLength).toString('base64') })),
      },
      validFor: { start },
    });
    const root = {
      mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
      tlogs: [key(tlog.publicKey, createHash('sha256').update(tlog.publicKey).digest())],
      certificateAuthorities: [authority([ca.rootCertificate]), authority([past.rootCertificate])],
      ctlogs: [key(ctlog.publicKey, Buffer.from(ctlog.logID.buffer, ctlog.logID.byteOffset, ctlog.logID.byteLength))],
      timestampAuthorities: [authority([tsa.intCertificate, tsa.rootCertificate])],
    };
    return new MockSigstore(server, base, root);
  }

  /** The trusted root JSON for this sigstore (what `keyless.trustedRoot` points at). */
  get trustedRoot(): object {
    return this.root;
  }

  private signer(identity: Identity, expired: boolean): FulcioSigner {
    return new FulcioSigner({
      fulcioBaseURL: expired ? `${this.base}/expired` : this.base,
      identityProvider: { getToken: () => Promise.resolve(identityToken(identity)) },
    });
  }

  /** A keyless sigstore bundle (v0.3) of `statement`, as cosign's new bundle format makes one. */
  async bundle(statement: Buffer, identity: Identity, options: { expired?: boolean } = {}): Promise<unknown> {
    const builder = new DSSEBundleBuilder({
      signer: this.signer(identity, options.expired === true),
      // The mock Rekor logs entries as proposed, which only `intoto` entries verify against as real Rekor's do.
      witnesses: [new RekorWitness({ rekorBaseURL: this.base, entryType: 'intoto' }), new TSAWitness({ tsaBaseURL: this.base })],
    });
    // The mock TSA writes milliseconds without their trailing zeros (".12Z"), a GeneralizedTime the sigstore
    // libraries do not read; real authorities write none or three digits. Such a bundle is made again.
    for (let attempt = 1; ; attempt++) {
      const bundle = await builder.create({ data: statement, type: 'application/vnd.in-toto+json' });
      try {
        const times = toSignedEntity(bundle).timestamps.map((t) =>
          t.$case === 'timestamp-authority' ? t.timestamp.signingTime : undefined,
        );
        if (times.some((time) => time !== undefined && Number.isNaN(time.getTime()))) throw new Error('invalid time');
        return bundleToJSON(bundle);
      } catch (err) {
        if (attempt >= 20 || !(err instanceof Error) || err.message !== 'invalid time') throw err;
      }
    }
  }

  /**
   * A keyless classic cosign signature of `payload`: the signature, certificate, chain and Rekor bundle
   * annotations cosign puts on the signature layer.
   */
  async cosignAnnotations(payload: Buffer, identity: Identity): Promise<Record<string, string>> {
    const builder = new MessageSignatureBundleBuilder({
      signer: this.signer(identity, false),
      witnesses: [new RekorWitness({ rekorBaseURL: this.base })],
    });
    const bundle = bundleToJSON(await builder.create({ data: payload }));
    const material = bundle.verificationMaterial as unknown as {
      certificate?: { rawBytes: string };
      x509CertificateChain?: { certificates: { rawBytes: string }[] };
      tlogEntries: {
        logIndex: string;
        logId: { keyId: string };
        integratedTime: string;
        inclusionPromise?: { signedEntryTimestamp: string };
        canonicalizedBody: string;
      }[];
    };
    const [entry] = material.tlogEntries;
    const leaf = material.certificate?.rawBytes ?? material.x509CertificateChain?.certificates[0]?.rawBytes ?? '';
    const pem = (der: string): string =>
      `-----BEGIN CERTIFICATE-----\n${der.replace(/(.{64})/g, '$1\n').trim()}\n-----END CERTIFICATE-----\n`;
    const root = (this.root as { certificateAuthorities: { certChain: { certificates: { rawBytes: string }[] } }[] })
      .certificateAuthorities[0];
    const signature = (bundle as { messageSignature?: { signature: string } }).messageSignature?.signature ?? '';
    if (entry === undefined) throw new Error('the mock Rekor returned no entry');
    return {
      'dev.cosignproject.cosign/signature': signature,
      'dev.sigstore.cosign/certificate': pem(leaf),
      'dev.sigstore.cosign/chain': pem(root?.certChain.certificates[0]?.rawBytes ?? ''),
      'dev.sigstore.cosign/bundle': JSON.stringify({
        SignedEntryTimestamp: entry.inclusionPromise?.signedEntryTimestamp ?? '',
        Payload: {
          body: entry.canonicalizedBody,
          integratedTime: Number(entry.integratedTime),
          logIndex: Number(entry.logIndex),
          logID: Buffer.from(entry.logId.keyId, 'base64').toString('hex'),
        },
      }),
    };
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
