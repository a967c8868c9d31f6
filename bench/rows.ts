/**
 * The rows of the bench: `direct` (the runtime's own socket), the reference relays (`splice`,
 * `h2-passthrough`) and the proxy variants (the built CLI). Each relay is a child process of its own, so its
 * CPU and memory are its alone.
 */
import { mkdirSync } from 'node:fs';
import type * as http2 from 'node:http2';
import * as path from 'node:path';
import { Child, startProxy, startReference } from './processes';
import { allowImages, PROXY_VARIANTS, writeProxyConfig, type TracingExporterMode } from './proxy-config';

export const DIRECT = 'direct';
export const SPLICE = 'splice';

export type RowKind = 'direct' | 'reference' | 'proxy';

export const REFERENCE_ROWS = [
  { name: SPLICE, script: 'splice-process.js' },
  { name: 'h2-passthrough', script: 'h2-passthrough-process.js' },
] as const;

export interface Row {
  readonly name: string;
  readonly kind: RowKind;
  readonly socketPath: string;
  /** The relay's process; undefined for direct. */
  readonly relay: Child | undefined;
  /** Where the proxy writes its CPU profile, when profiling. */
  readonly profileDir: string | undefined;
  session: http2.ClientHttp2Session | undefined;
}

export interface RowLaunch {
  /** Rows besides direct to start (names from REFERENCE_ROWS and PROXY_VARIANTS). */
  readonly rows: readonly string[];
  readonly runtimeSocket: string;
  /** This runtime's folder in the temp dir. */
  readonly dir: string;
  readonly tracingExporter: TracingExporterMode;
  readonly closedPort: number;
  readonly proxyNodeArgs: readonly string[];
  readonly profile: boolean;
  /** Image patterns the proxies' image policy must allow too (the private registry of a real runtime). */
  readonly allowImages?: readonly string[];
  /** Per row, a command node runs under (valgrind, for instruction counts). */
  readonly wrapper?: (row: string) => readonly string[] | undefined;
}

/** Starts every relay at once (they boot in parallel) and returns the rows, direct first, none waited for. */
export function startRows(launch: RowLaunch): Row[] {
  const rows: Row[] = [
    { name: DIRECT, kind: 'direct', socketPath: launch.runtimeSocket, relay: undefined, profileDir: undefined, session: undefined },
  ];
  for (const [i, name] of launch.rows.entries()) {
    // Short names: a unix socket path holds at most 107 bytes.
    const dir = path.join(launch.dir, `row-${i}`);
    const socketPath = path.join(dir, 'relay.sock');
    const reference = REFERENCE_ROWS.find((r) => r.name === name);
    if (reference !== undefined) {
      mkdirSync(dir, { recursive: true });
      const wrapper = launch.wrapper?.(name);
      const relay = startReference(reference.script, {
        name,
        listen: socketPath,
        upstream: launch.runtimeSocket,
        nodeArgs: [],
        ...(wrapper ? { wrapper } : {}),
      });
      rows.push({ name, kind: 'reference', socketPath, relay, profileDir: undefined, session: undefined });
      continue;
    }
    const variant = PROXY_VARIANTS.find((v) => v.name === name);
    if (variant === undefined) throw new Error(`unknown row ${name}`);
    const configFile = writeProxyConfig(variant, {
      dir,
      listen: socketPath,
      upstream: launch.runtimeSocket,
      tracingExporter: launch.tracingExporter,
      closedPort: launch.closedPort,
    });
    allowImages(dir, launch.allowImages ?? []);
    const profileDir = launch.profile ? path.join(dir, 'profile') : undefined;
    const profiling = profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', profileDir];
    const wrapper = launch.wrapper?.(name);
    const relay = startProxy({
      name,
      configFile,
      listen: socketPath,
      upstream: launch.runtimeSocket,
      nodeArgs: [...launch.proxyNodeArgs, ...profiling],
      ...(wrapper ? { wrapper } : {}),
    });
    rows.push({ name, kind: 'proxy', socketPath, relay, profileDir, session: undefined });
  }
  return rows;
}
