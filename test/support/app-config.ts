import * as path from 'node:path';
import { builtinTypes } from '../../src/commands/builtin-types';
import { validateProxyConfig, type ProxyConfig } from '../../src/config/schema';
import type { FakeRuntime } from './fake-runtime';

/**
 * A validated config for an App in front of one fake runtime: its CRI socket in `dir`, the admin listener on a
 * loopback port the OS picks, no shutdown grace. `extra` adds keys or replaces these.
 */
export function appConfig(dir: string, runtime: FakeRuntime, extra: Record<string, unknown> = {}): ProxyConfig {
  const result = validateProxyConfig(
    {
      listen: `unix://${path.join(dir, 'proxy.sock')}`,
      http: { listen: '127.0.0.1:0' },
      shutdownGraceSeconds: 0,
      backends: [{ name: 'containerd', endpoint: `unix://${runtime.socketPath}` }],
      ...extra,
    },
    builtinTypes(),
  );
  if (!result.ok) throw new Error(JSON.stringify(result.issues));
  return result.config;
}
