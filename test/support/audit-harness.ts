/** The audit interceptor in a running test proxy, its log read back record by record. */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import type { AuditIo } from '../../src/audit/writer';
import { auditConfigSchema, createAuditInterceptor } from '../../src/interceptors/audit';
import { silentLogger, type Logger } from '../../src/log';
import type { OnError } from '../../src/chain/chain';
import type { Interceptor } from '../../src/chain/types';
import { makeTempDir, startTestProxy, type RawClient, type TestProxy, depsForTestProxy } from './proxy-harness';

const dirs: string[] = [];

/** Removes the folders of every harness started so far (call in afterAll). */
export function removeAuditDirs(): void {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

export interface AuditHarness {
  readonly proxy: TestProxy;
  readonly client: RawClient;
  readonly path: string;
  readonly registry: Registry;
  readonly audit: Interceptor;
  records(): Record<string, unknown>[];
  close(): Promise<void>;
}

export interface AuditStartOptions {
  readonly config?: Record<string, unknown>;
  readonly log?: Logger;
  readonly io?: Partial<AuditIo>;
  readonly onError?: OnError;
  readonly after?: Interceptor[];
  readonly dir?: string;
  readonly runtimeDown?: boolean;
}

/** An audit interceptor (then `after`) in front of the fake runtime, its log in a fresh folder. */
export async function startAudit(options: AuditStartOptions = {}): Promise<AuditHarness> {
  const dir = options.dir ?? makeTempDir('cri-proxy-audit-');
  dirs.push(dir);
  const path = join(dir, 'audit.log');
  const registry = new Registry();
  const log = options.log ?? silentLogger;
  const { deps, bind } = depsForTestProxy('audit', registry, log);
  const config = auditConfigSchema.parse({ path, ...options.config });
  const audit = createAuditInterceptor(config, deps, options.io ? { io: options.io } : {});
  const entries = [audit, ...(options.after ?? [])].map((interceptor) => ({
    interceptor,
    onError: options.onError ?? 'failClosed',
    methods: undefined,
  }));
  const proxy = await startTestProxy({ entries, log, ...(options.runtimeDown ? { runtimeDown: true } : {}) });
  bind(proxy);
  return {
    proxy,
    client: proxy.client(),
    path,
    registry,
    audit,
    records: () =>
      readFileSync(path, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    close: async () => {
      await proxy.close();
      await audit.close?.();
    },
  };
}
