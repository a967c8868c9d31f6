import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { verifyAuditFiles } from '../../src/audit/verify';
import { type AuditIo } from '../../src/audit/writer';
import { auditConfigSchema, createAuditInterceptor } from '../../src/interceptors/audit';
import { ProxyError } from '../../src/errors';
import { createLogger, silentLogger, type Logger } from '../../src/log';
import type { OnError } from '../../src/chain/chain';
import { encodeMessage } from '../../src/messages/codec';
import type { Interceptor } from '../../src/chain/types';
import { makeTempDir, startTestProxy, type RawClient, type TestProxy, depsForTestProxy } from '../support/proxy-harness';
import type { Scheduler } from '../../src/scheduler';
import { gatedIo } from '../support/gated-io';
import { ManualScheduler } from '../support/manual-scheduler';
import { waitFor } from '../support/wait';
import { nodeIo } from '../../src/audit/file-io';

const RT = '/runtime.v1.RuntimeService';
const IMG = '/runtime.v1.ImageService';
const start1 = (id: string): Buffer => encodeMessage('runtime.v1.StartContainerRequest', { container_id: id });

interface Harness {
  readonly proxy: TestProxy;
  readonly client: RawClient;
  readonly dir: string;
  readonly path: string;
  readonly registry: Registry;
  lines(): string[];
  close(): Promise<void>;
}

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function start(
  config: Record<string, unknown>,
  log: Logger = silentLogger,
  io?: Partial<AuditIo>,
  onError: OnError = 'failClosed',
  scheduler?: Scheduler,
): Promise<Harness> {
  const dir = makeTempDir('cri-proxy-audit-');
  const path = join(dir, 'audit.log');
  const registry = new Registry();
  const { deps, bind } = depsForTestProxy('audit', registry, log);
  const hooks = { ...(io ? { io } : {}), ...(scheduler ? { scheduler } : {}) };
  const audit: Interceptor = createAuditInterceptor(auditConfigSchema.parse({ path, ...config }), deps, hooks);
  const proxy = await startTestProxy({ entries: [{ interceptor: audit, onError, methods: undefined }], log });
  bind(proxy);
  return {
    proxy,
    client: proxy.client(),
    dir,
    path,
    registry,
    lines: () =>
      readFileSync(path, 'utf8')
        .split('\n')
        .filter((l) => l !== ''),
    close: async () => {
      await proxy.close();
      await audit.close?.();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function counted(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = await registry.getSingleMetric(name)?.get();
  const wanted = { interceptor: 'audit', ...labels };
  return metric?.values.find((v) => Object.entries(wanted).every(([k, value]) => v.labels[k] === value))?.value ?? 0;
}

const settled = <T>(p: Promise<T>): { done: () => boolean } => {
  let done = false;
  void p.then(() => (done = true));
  return { done: () => done };
};

test('SENTINEL: secrets reach neither the audit log nor any log line', async () => {
  const SENTINEL = 'S3NT1NEL-a8f2c9d1';
  const logLines: string[] = [];
  const log = createLogger('debug', (line) => logLines.push(line));
  h = await start({ redact: { annotationKeys: ['example.com/db-*'], labelKeys: ['example.com/owner-*'] } }, log);
  h.proxy.runtime.on('PullImage', { respond: encodeMessage('runtime.v1.PullImageResponse', { image_ref: 'sha256:1' }) });
  h.proxy.runtime.on('Exec', { respond: encodeMessage('runtime.v1.ExecResponse', { url: `http://127.0.0.1:10010/exec/${SENTINEL}` }) });
  const auth = {
    username: SENTINEL,
    password: SENTINEL,
    auth: SENTINEL,
    identity_token: SENTINEL,
    registry_token: SENTINEL,
    server_address: 'registry.example',
  };
  const annotations = {
    'example.com/db-password': SENTINEL,
    'kubectl.kubernetes.io/last-applied-configuration': `{"env":"${SENTINEL}"}`,
    'example.com/team': 'shop',
  };
  const labels = { 'example.com/owner-email': SENTINEL, app: 'web' };
  const sandbox = { metadata: { name: 'web-0', namespace: 'shop', uid: 'u1' }, labels, annotations };
  const calls: [string, Buffer][] = [
    [
      `${IMG}/PullImage`,
      encodeMessage('runtime.v1.PullImageRequest', { image: { image: 'registry.example/app:1' }, auth, sandbox_config: sandbox }),
    ],
    [`${RT}/RunPodSandbox`, encodeMessage('runtime.v1.RunPodSandboxRequest', { config: sandbox })],
    [
      `${RT}/CreateContainer`,
      encodeMessage('runtime.v1.CreateContainerRequest', {
        pod_sandbox_id: 'sb-1',
        config: {
          metadata: { name: 'app' },
          image: { image: 'registry.example/app:1' },
          envs: [
            { key: 'DB_PASSWORD', value: Buffer.from(SENTINEL) },
            { key: 'API_KEY', value: Buffer.from(`prefix-${SENTINEL}`) },
          ],
          labels,
          annotations,
        },
        sandbox_config: sandbox,
      }),
    ],
    [`${RT}/Exec`, encodeMessage('runtime.v1.ExecRequest', { container_id: 'c-1', cmd: ['sh'], tty: true, stdin: true })],
  ];
  for (const [path, request] of calls) expect((await h.client.unary(path, request)).status.code).toBe(grpc.status.OK);

  const records = h.lines();
  expect(records.map((l) => (JSON.parse(l) as { method: string }).method)).toEqual([
    'PullImage',
    'RunPodSandbox',
    'CreateContainer',
    'Exec',
  ]);
  // The secrets did travel: the runtime got them byte for byte.
  expect(h.proxy.runtime.lastCall('PullImage')?.requestBytes.includes(SENTINEL)).toBe(true);
  const everything = readdirSync(h.dir)
    .map((f) => readFileSync(join(h?.dir ?? '', f), 'utf8'))
    .join('\n');
  expect(everything).not.toContain(SENTINEL);
  expect(logLines.length).toBeGreaterThan(0);
  expect(logLines.filter((l) => l.includes(SENTINEL))).toEqual([]);
  // What is recorded instead: which credentials were present, and every non-secret key.
  const [pull, run, create] = records.map((l) => JSON.parse(l) as Record<string, unknown>);
  expect(pull?.auth).toEqual({
    username: '[redacted]',
    password: '[redacted]',
    auth: '[redacted]',
    identity_token: '[redacted]',
    registry_token: '[redacted]',
    server_address: 'registry.example',
  });
  expect(run?.labels).toEqual({ 'example.com/owner-email': '[redacted]', app: 'web' });
  expect(run?.annotations).toEqual({
    'example.com/db-password': '[redacted]',
    'kubectl.kubernetes.io/last-applied-configuration': '[redacted]',
    'example.com/team': 'shop',
  });
  expect(create?.env).toEqual([
    { name: 'DB_PASSWORD', value: '[redacted]' },
    { name: 'API_KEY', value: '[redacted]' },
  ]);
});

test('whenFull: block — the call waits while the writer is stalled', async () => {
  const gate = gatedIo();
  h = await start({ queueSize: 1, whenFull: 'block' }, silentLogger, gate.io);
  const first = h.client.unary(`${RT}/StartContainer`, start1('a'));
  const second = h.client.unary(`${RT}/StartContainer`, start1('b'));
  const [a, b] = [settled(first), settled(second)];
  await waitFor(() => h?.proxy.runtime.calls.length === 2 && gate.writes() === 1);
  // A read (not recorded) makes a full round trip through the proxy meanwhile; the stalled calls still wait.
  expect((await h.client.unary(`${RT}/Version`, Buffer.alloc(0))).status.code).toBe(grpc.status.OK);
  expect([a.done(), b.done()]).toEqual([false, false]);
  gate.open();
  expect((await first).status.code).toBe(grpc.status.OK);
  expect((await second).status.code).toBe(grpc.status.OK);
  expect(h.lines()).toHaveLength(2);
  expect(await counted(h.registry, 'cri_proxy_audit_dropped_total')).toBe(0);
  expect(await counted(h.registry, 'cri_proxy_audit_records_total')).toBe(2);
});

test('whenFull: drop — calls over the limit go through unrecorded and are counted', async () => {
  const gate = gatedIo();
  h = await start({ queueSize: 1, whenFull: 'drop' }, silentLogger, gate.io);
  const first = h.client.unary(`${RT}/StartContainer`, start1('a'));
  await waitFor(() => gate.writes() === 1);
  const a = settled(first);
  expect((await h.client.unary(`${RT}/StartContainer`, start1('b'))).status.code).toBe(grpc.status.OK);
  expect((await h.client.unary(`${RT}/StopContainer`, start1('c'))).status.code).toBe(grpc.status.OK);
  expect(a.done()).toBe(false);
  expect(await counted(h.registry, 'cri_proxy_audit_dropped_total')).toBe(2);
  gate.open();
  expect((await first).status.code).toBe(grpc.status.OK);
  expect(h.lines().map((l) => (JSON.parse(l) as { container: { id: string } }).container.id)).toEqual(['a']);
});

test('whenFull: block with writeTimeoutMs — a call held past it fails UNAVAILABLE, counted; a read alongside is served', async () => {
  const gate = gatedIo();
  const scheduler = new ManualScheduler();
  h = await start(
    { queueSize: 1, whenFull: 'block', writeTimeoutMs: 2000, headLogIntervalMs: 0 },
    silentLogger,
    gate.io,
    'failClosed',
    scheduler,
  );
  const first = h.client.unary(`${RT}/StartContainer`, start1('a'));
  await waitFor(() => gate.writes() === 1);
  const second = h.client.unary(`${RT}/StartContainer`, start1('b'));
  // Both records are in the writer, each with its timeout armed: one being written, one waiting for room.
  await waitFor(() => scheduler.pending === 2);
  expect((await h.client.unary(`${RT}/Version`, Buffer.alloc(0))).status.code).toBe(grpc.status.OK);
  scheduler.advance(2000);
  for (const call of [first, second]) {
    const result = await call;
    expect(result.status.code).toBe(grpc.status.UNAVAILABLE);
    expect(result.status.details).toMatch(/^cri-proxy: audit log write timed out: no audit record written within 2000 ms/);
  }
  expect(h.proxy.faults.map((f) => (f.error instanceof ProxyError ? f.error.code : undefined))).toEqual(['AUDIT_TIMEOUT', 'AUDIT_TIMEOUT']);
  expect(await counted(h.registry, 'cri_proxy_audit_timeouts_total')).toBe(2);
  gate.open();
  // The record being written when its call timed out still lands; the one waiting for room was withdrawn.
  expect((await h.client.unary(`${RT}/StartContainer`, start1('c'))).status.code).toBe(grpc.status.OK);
  expect(h.lines().map((l) => (JSON.parse(l) as { container: { id: string } }).container.id)).toEqual(['a', 'c']);
  expect(await verifyAuditFiles([h.path])).toMatchObject({ ok: true, records: 2 });
});

test('a RunPodSandbox body that does not decode is refused INVALID_ARGUMENT before the runtime, and recorded', async () => {
  h = await start({});
  const result = await h.client.unary(`${RT}/RunPodSandbox`, Buffer.from([0x0a, 0x09]));
  expect(result.status.code).toBe(grpc.status.INVALID_ARGUMENT);
  expect(h.proxy.runtime.calls.filter((c) => c.name === 'RunPodSandbox')).toEqual([]);
  const [record] = h.lines().map((l) => JSON.parse(l) as Record<string, unknown>);
  expect(record).toMatchObject({
    method: 'RunPodSandbox',
    outcome: { code: grpc.status.INVALID_ARGUMENT, status: 'INVALID_ARGUMENT', fromProxy: true },
  });
  expect(typeof record?.requestError).toBe('string');
  // A read that does not decode is not the proxy's to judge: it goes on to the runtime.
  h.proxy.runtime.on('ListContainers', { respond: Buffer.alloc(0) });
  expect((await h.client.unary(`${RT}/ListContainers`, Buffer.from([0x0a, 0x09]))).status.code).toBe(grpc.status.OK);
  expect(await verifyAuditFiles([h.path])).toMatchObject({ ok: true, records: 1 });
});

describe('a failed write', () => {
  let failing = true;
  const io: Partial<AuditIo> = {
    write: (fd, data) => (failing ? Promise.reject(new Error('EIO: i/o error, write')) : nodeIo.write(fd, data)),
  };
  beforeEach(() => {
    failing = true;
  });

  test('fails the call under failClosed, with a clear status; later records chain on', async () => {
    h = await start({}, silentLogger, io);
    const result = await h.client.unary(`${RT}/StartContainer`, start1('a'));
    // AUDIT_WRITE_FAILED: the node cannot record changes right now.
    expect(result.status.code).toBe(grpc.status.UNAVAILABLE);
    expect(result.status.details).toBe('cri-proxy: audit log write failed: EIO: i/o error, write');
    expect(h.proxy.faults.map((f) => [f.entry, f.error instanceof ProxyError ? f.error.code : undefined])).toEqual([
      ['audit', 'AUDIT_WRITE_FAILED'],
    ]);
    expect(await counted(h.registry, 'cri_proxy_audit_write_errors_total')).toBe(1);
    expect(await counted(h.registry, 'cri_proxy_audit_records_total')).toBe(0);
    failing = false;
    expect((await h.client.unary(`${RT}/StartContainer`, start1('b'))).status.code).toBe(grpc.status.OK);
    expect(await verifyAuditFiles([h.path])).toMatchObject({ ok: true, records: 1 });
  });

  test('a full disk: the torn bytes are rolled back, so once there is room again the log verifies', async () => {
    let full = true;
    const enospc: Partial<AuditIo> = {
      write: async (fd, data) => {
        if (!full) return nodeIo.write(fd, data);
        // As a disk filling up: part of the record lands, then no more room.
        await nodeIo.write(fd, data.subarray(0, 40));
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      },
    };
    h = await start({}, silentLogger, enospc);
    const failed = await h.client.unary(`${RT}/StartContainer`, start1('a'));
    expect(failed.status.code).toBe(grpc.status.UNAVAILABLE);
    expect(failed.status.details).toBe('cri-proxy: audit log write failed: ENOSPC: no space left on device, write');
    expect(h.lines()).toEqual([]);
    expect(await counted(h.registry, 'cri_proxy_audit_rollbacks_total', { result: 'rolled_back' })).toBe(1);
    expect(await counted(h.registry, 'cri_proxy_audit_rollbacks_total', { result: 'failed' })).toBe(0);
    full = false;
    expect((await h.client.unary(`${RT}/StartContainer`, start1('b'))).status.code).toBe(grpc.status.OK);
    expect(await verifyAuditFiles([h.path])).toMatchObject({ ok: true, records: 1, problems: [], failedWrites: [] });
  });

  test('lets the call through under failOpen (counted)', async () => {
    h = await start({}, silentLogger, io, 'failOpen');
    const result = await h.client.unary(`${RT}/StartContainer`, start1('a'));
    expect(result.status.code).toBe(grpc.status.OK);
    expect(await counted(h.registry, 'cri_proxy_audit_write_errors_total')).toBe(1);
    expect(h.proxy.faults.map((f) => f.entry)).toEqual(['audit']);
  });
});
