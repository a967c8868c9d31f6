/**
 * The image policy's settings for signature verification: how registries are reached, where verified digests are
 * kept, timeouts and limits. Files named here (CA certificates, docker auth files) are read at validation, so a
 * bad one stops `config validate`, startup and reload with its key path.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { errorMessage } from '../../errors';
import type { Logger } from '../../log';
import type { Provenance } from '../../provenance/provenance';
import { readAuthFile } from '../../provenance/registry/auth';
import { MAX_INT32 } from '../../values';

export const DEFAULT_STATE_DIR = '/var/lib/cri-proxy/image-policy';

/** A file that must be readable and hold what `check` accepts; the problem is reported on the key naming it. */
function fileSchema(check: (file: string) => void): z.ZodType<string> {
  return z
    .string()
    .min(1, 'must not be empty')
    .superRefine((file, ctx) => {
      try {
        check(file);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: `${file}: ${errorMessage(err)}` });
      }
    });
}

const caFileSchema = fileSchema((file) => {
  const text = readFileSync(file, 'utf8');
  const pems = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (pems.length === 0) throw new Error('holds no PEM certificate');
  for (const pem of pems) new X509Certificate(pem);
});

export const authFileSchema = fileSchema((file) => void readAuthFile(file));

const REGISTRY_HOST =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$/;

const registrySchema = z.strictObject({
  /** Plain http instead of https (a registry on the node or a test registry). */
  plainHttp: z.boolean().default(false),
  /** PEM CA certificates trusted for this registry, besides the system's. */
  caFile: caFileSchema.optional(),
  /** A docker config.json with this registry's credentials. */
  authFile: authFileSchema.optional(),
});

/** `registries`: keyed by registry host as images name it (`localhost:5000`, `registry.corp.example`). */
export const registriesSchema = z
  .record(z.string(), registrySchema)
  .superRefine((registries, ctx) => {
    for (const host of Object.keys(registries)) {
      if (!REGISTRY_HOST.test(host)) {
        ctx.addIssue({ code: 'custom', path: [host], message: 'must be a registry host, optionally with a port (no scheme or path)' });
      }
    }
  })
  .default({});

/** The verification settings of the interceptor's config (spread into its schema). */
export const verificationSettings = {
  registries: registriesSchema,
  /** Credentials for registries without an `authFile` of their own (the node's, e.g. kubelet's config.json). */
  authFile: authFileSchema.optional(),
  /** Where the cache of verified digests is kept across restarts. */
  stateDir: z.string().min(1, 'must not be empty').default(DEFAULT_STATE_DIR),
  /** The longest one registry request may take. */
  registryTimeoutMs: z.int().min(1).max(MAX_INT32).default(10_000),
  /** Requests in flight to one registry at most. */
  registryConcurrency: z.int().min(1).max(1000).default(4),
  /** Verified digests kept (least recently used go first). */
  verifiedCacheSize: z.int().min(1).max(10_000_000).default(10_000),
};

export interface VerificationSettings {
  readonly registries: Readonly<
    Record<string, { readonly plainHttp: boolean; readonly caFile?: string | undefined; readonly authFile?: string | undefined }>
  >;
  readonly authFile?: string | undefined;
  readonly stateDir: string;
  readonly registryTimeoutMs: number;
  readonly registryConcurrency: number;
  readonly verifiedCacheSize: number;
}

/**
 * The provenance service of one image-policy instance; its cache lives in `<stateDir>/verified-<name>.json`. Loaded
 * on first need, as the sigstore libraries it brings are large: a proxy whose rules ask for no signature never loads them.
 */
export async function createProvenance(settings: VerificationSettings, name: string, log: Logger): Promise<Provenance> {
  const { Provenance } = await import('../../provenance/provenance');
  return new Provenance({
    registries: settings.registries,
    authFile: settings.authFile,
    requestTimeoutMs: settings.registryTimeoutMs,
    concurrency: settings.registryConcurrency,
    cacheFile: join(settings.stateDir, `verified-${name}.json`),
    cacheSize: settings.verifiedCacheSize,
    onCacheError: (problem) => log.warn('the cache of verified image digests is kept in memory only', { problem }),
  });
}
