/** Settings written with an old name: still valid, reported so that operators move to the new one. */
import type { Registry } from 'prom-client';
import type { InterceptorTypes } from '../chain/interceptor-types';
import type { Logger } from '../log';
import { METRIC } from '../metrics/names';
import { ensureGauge } from '../metrics/registry';
import { isRecord } from '../values';
import { formatPath } from './issues';
import type { ProxyConfig } from './schema';

export interface DeprecatedSetting {
  /** Key path in the config file (`interceptors[2].config.failOpen`). */
  readonly setting: string;
  /** What to write instead. */
  readonly instead: string;
}

/** The deprecated keys a valid config uses (each type's `deprecatedKeys`), in file order. */
export function deprecatedSettings(config: ProxyConfig, types: InterceptorTypes): DeprecatedSetting[] {
  return config.interceptors.flatMap((entry, i) => {
    const keys = types.get(entry.type)?.deprecatedKeys ?? {};
    const settings = isRecord(entry.config) ? entry.config : {};
    return Object.entries(keys).flatMap(([key, instead]) =>
      settings[key] === undefined ? [] : [{ setting: formatPath(['interceptors', i, 'config', key]), instead }],
    );
  });
}

/** `config validate`'s line for one: `interceptors[2].config.failOpen: deprecated; use …`. */
export function describeDeprecated(found: DeprecatedSetting): string {
  return `${found.setting}: deprecated; ${found.instead}`;
}

/**
 * Logs each deprecated setting of the config being applied (once per start or reload) and shows them in
 * `cri_proxy_deprecated_settings`, which a reload resets to what the new config uses.
 */
export function reportDeprecatedSettings(config: ProxyConfig, types: InterceptorTypes, log: Logger, registry: Registry): void {
  const gauge = ensureGauge(registry, {
    name: METRIC.deprecatedSettings,
    help: 'Settings in force written with an old name (1 each), by key path; the log and config validate say what to write instead',
    labelNames: ['setting'] as const,
  });
  gauge.reset();
  for (const found of deprecatedSettings(config, types)) {
    log.warn('deprecated setting', { setting: found.setting, instead: found.instead });
    gauge.set({ setting: found.setting }, 1);
  }
}
