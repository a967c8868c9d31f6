import { stringify } from 'yaml';
import { REDACTED, isRecord } from '../values';
import type { InterceptorTypes } from '../chain/interceptor-types';
import type { ProxyConfig } from './schema';

/** `value` with the keys `path` names replaced by the redaction marker; `*` matches every key of a map. */
function masked(value: unknown, path: readonly string[]): unknown {
  const [head, ...rest] = path;
  if (head === undefined) return value === undefined ? undefined : REDACTED;
  if (!isRecord(value)) return value;
  const out: Record<string, unknown> = { ...value };
  for (const key of Object.keys(out)) if (head === '*' || head === key) out[key] = masked(out[key], rest);
  return out;
}

/** A deprecated key's value is shown under its new name, which its schema fills in: the old one is left out. */
function withoutKeys(config: unknown, keys: Readonly<Record<string, string>> | undefined): unknown {
  if (keys === undefined || !isRecord(config)) return config;
  return Object.fromEntries(Object.entries(config).filter(([key]) => !Object.hasOwn(keys, key)));
}

/** The configuration as YAML, every default filled in and every secret its type declares masked. */
export function printableConfig(config: ProxyConfig, types: InterceptorTypes): string {
  const interceptors = config.interceptors.map((entry) => {
    const type = types.get(entry.type);
    const secrets = type?.secretKeys ?? [];
    const shown = secrets.reduce<unknown>((c, key) => masked(c, key.split('.')), withoutKeys(entry.config, type?.deprecatedKeys));
    return { ...entry, config: shown };
  });
  return stringify({ ...config, interceptors }, { lineWidth: 0 });
}
