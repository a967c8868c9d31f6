import * as path from 'node:path';
import { rmSync, writeFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { App } from '../../src/app';
import { verifyAuditFiles } from '../../src/audit/verify';
import type { ProxyConfig } from '../../src/config/schema';
import { createLogger, silentLogger } from '../../src/log';
import { encodeMessage } from '../../src/messages/codec';
import { appConfig } from '../support/app-config';
import { FakeRuntime } from '../support/fake-runtime';
import { RawClient, makeTempDir } from '../support/proxy-harness';

const START = '/runtime.v1.RuntimeService/StartContainer';

function configFor(dir: string, runtime: FakeRuntime, audit: Record<string, unknown>): ProxyConfig {
  return appConfig(dir, runtime, {
    http: { listen: '' },
    interceptors: [{ name: 'audit', type: 'audit', config: { path: path.join(dir, 'audit.log'), ...audit } }],
  });
}

test('in the running proxy, a config reload keeps one writer and one chain', async () => {
  const dir = makeTempDir();
  const runtime = new FakeRuntime(path.join(dir, 'runtime.sock'));
  await runtime.start();
  const registry = new Registry();
  const app = await App.start(configFor(dir, runtime, {}), { log: silentLogger, registry });
  const client = new RawClient(`unix:${app.socketPath}`);
  try {
    const call = (id: string): Promise<number> =>
      client.unary(START, encodeMessage('runtime.v1.StartContainerRequest', { container_id: id })).then((r) => r.status.code);
    expect(await call('a')).toBe(grpc.status.OK);
    await app.reload(configFor(dir, runtime, { fsync: 'interval' }));
    expect(await call('b')).toBe(grpc.status.OK);
    await app.reload(configFor(dir, runtime, {}));
    expect(await call('c')).toBe(grpc.status.OK);
    const metric = await registry.getSingleMetric('cri_proxy_audit_records_total')?.get();
    expect(metric?.values.find((v) => v.labels.interceptor === 'audit')?.value).toBe(3);
  } finally {
    client.close();
    await app.stop(0);
    await runtime.stop();
  }
  expect(await verifyAuditFiles([path.join(dir, 'audit.log')])).toMatchObject({ ok: true, records: 3, lastSeq: 3 });
  rmSync(dir, { recursive: true, force: true });
});

test('a keyed chain in the running proxy: the key file is reread on reload, and the log verifies with both keys', async () => {
  const dir = makeTempDir();
  const runtime = new FakeRuntime(path.join(dir, 'runtime.sock'));
  await runtime.start();
  const [first, second] = ['first-key-0123456789abcdef0123456789abcdef', 'second-key-0123456789abcdef0123456789abcdef'];
  const keyFile = path.join(dir, 'audit.key');
  writeFileSync(keyFile, `${first}\n`, { mode: 0o600 });
  const app = await App.start(configFor(dir, runtime, { keyFile }), { log: silentLogger, registry: new Registry() });
  const client = new RawClient(`unix:${app.socketPath}`);
  try {
    const call = (id: string): Promise<number> =>
      client.unary(START, encodeMessage('runtime.v1.StartContainerRequest', { container_id: id })).then((r) => r.status.code);
    expect(await call('a')).toBe(grpc.status.OK);
    writeFileSync(keyFile, `${second}\n`, { mode: 0o600 });
    await app.reload(configFor(dir, runtime, { keyFile }));
    expect(await call('b')).toBe(grpc.status.OK);
  } finally {
    client.close();
    await app.stop(0);
    await runtime.stop();
  }
  const log = [path.join(dir, 'audit.log')];
  const keys = [Buffer.from(first), Buffer.from(second)];
  expect(await verifyAuditFiles(log, { keys })).toMatchObject({ ok: true, records: 2, keyed: 2, macChecked: true });
  expect((await verifyAuditFiles(log, { keys: keys.slice(0, 1) })).problems).toEqual([expect.objectContaining({ kind: 'edited', seq: 2 })]);
  rmSync(dir, { recursive: true, force: true });
});

test('a stop within shutdownGraceSeconds of a reload closes every generation: the audit log is closed, its head logged', async () => {
  const dir = makeTempDir();
  const runtime = new FakeRuntime(path.join(dir, 'runtime.sock'));
  await runtime.start();
  const lines: string[] = [];
  const log = createLogger('info', (line) => lines.push(line));
  // The replaced generation would be closed only after 30 s: the stop comes well before.
  const config = { ...configFor(dir, runtime, {}), shutdownGraceSeconds: 30 };
  const app = await App.start(config, { log, registry: new Registry() });
  const client = new RawClient(`unix:${app.socketPath}`);
  try {
    const call = (id: string): Promise<number> =>
      client.unary(START, encodeMessage('runtime.v1.StartContainerRequest', { container_id: id })).then((r) => r.status.code);
    expect(await call('a')).toBe(grpc.status.OK);
    await app.reload(config);
    expect(await call('b')).toBe(grpc.status.OK);
  } finally {
    client.close();
    await app.stop(0);
    await runtime.stop();
  }
  // Closed for good: a proxy started again in this process opens the log afresh and carries the chain on.
  const again = await App.start(configFor(dir, runtime, {}), { log, registry: new Registry() });
  await again.stop(0);
  // The chain head is logged when the shared writer opens and when its last holder closes it.
  const heads = lines.flatMap((line) => {
    const head = (JSON.parse(line) as { auditChainHead?: { reason: string; seq: number } }).auditChainHead;
    return head === undefined ? [] : [[head.reason, head.seq]];
  });
  expect(heads).toEqual([
    ['open', 0],
    ['close', 2],
    ['open', 2],
    ['close', 2],
  ]);
  rmSync(dir, { recursive: true, force: true });
});
