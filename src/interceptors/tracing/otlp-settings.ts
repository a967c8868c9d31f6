import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseKeyPairsIntoRecord } from '@opentelemetry/core';

export type OtlpProtocol = 'http' | 'grpc';

/** Where and how an OTLP exporter sends, the configured values first, then the OTEL_EXPORTER_OTLP_* variables. */
export interface OtlpSettings {
  /** `http:` is plaintext, `https:` TLS; for OTLP/HTTP the whole path, for OTLP/gRPC only the authority counts. */
  readonly url: URL;
  readonly headers: Readonly<Record<string, string>>;
  readonly gzip: boolean;
  /** A root certificate, and a client certificate with its key, for TLS. */
  readonly tls: { readonly ca?: Buffer; readonly cert?: Buffer; readonly key?: Buffer };
}

const DEFAULT_ENDPOINT: Readonly<Record<OtlpProtocol, string>> = {
  http: 'http://localhost:4318/v1/traces',
  grpc: 'http://localhost:4317',
};

/**
 * The exporter's settings as the OTLP exporter specification has them: the endpoint and headers from the config,
 * else from OTEL_EXPORTER_OTLP_TRACES_* (as given), else OTEL_EXPORTER_OTLP_* (with `/v1/traces` added for
 * OTLP/HTTP); the environment's headers merged under the configured ones; compression and TLS files from the
 * environment. A gRPC endpoint without a scheme uses TLS unless OTEL_EXPORTER_OTLP_[TRACES_]INSECURE is true.
 */
export function otlpSettings(
  protocol: OtlpProtocol,
  config: { readonly endpoint?: string | undefined; readonly headers?: Readonly<Record<string, string>> | undefined },
  env: NodeJS.ProcessEnv = process.env,
): OtlpSettings {
  const read = (name: string): string | undefined => {
    const value = (env[`OTEL_EXPORTER_OTLP_TRACES_${name}`] ?? '').trim() || (env[`OTEL_EXPORTER_OTLP_${name}`] ?? '').trim();
    return value === '' ? undefined : value;
  };
  const file = (name: string): Buffer | undefined => {
    const path = read(name);
    return path === undefined ? undefined : readFileSync(resolve(path));
  };
  const specific = (env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] ?? '').trim() || undefined;
  const generic = (env['OTEL_EXPORTER_OTLP_ENDPOINT'] ?? '').trim() || undefined;
  const fromGeneric = generic !== undefined && protocol === 'http' ? `${generic.replace(/\/$/, '')}/v1/traces` : generic;
  let endpoint = config.endpoint ?? specific ?? fromGeneric ?? DEFAULT_ENDPOINT[protocol];
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint))
    endpoint = `${read('INSECURE')?.toLowerCase() === 'true' ? 'http' : 'https'}://${endpoint}`;
  const url = new URL(endpoint);
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new Error(`OTLP endpoint ${endpoint}: only http:// and https:// are supported`);
  const ca = file('CERTIFICATE');
  const cert = file('CLIENT_CERTIFICATE');
  const key = file('CLIENT_KEY');
  return {
    url,
    headers: {
      ...parseKeyPairsIntoRecord(env['OTEL_EXPORTER_OTLP_HEADERS']),
      ...parseKeyPairsIntoRecord(env['OTEL_EXPORTER_OTLP_TRACES_HEADERS']),
      ...config.headers,
    },
    gzip: read('COMPRESSION') === 'gzip',
    tls: { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) },
  };
}
