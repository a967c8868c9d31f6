import { execFile } from 'node:child_process';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { Registry } from 'prom-client';
import { createTracingInterceptor } from '../../src/interceptors/tracing';
import { silentLogger } from '../../src/log';
import { Router } from '../../src/proxy/router';
import { Upstream } from '../../src/proxy/upstream';
import { sample } from '../support/metric-samples';
import { startTestProxy } from '../support/proxy-harness';
import { tracingConfigSchema } from '../../src/interceptors/tracing/config';

/*
 * The OTLP/HTTP exporter loads node:http with a native dynamic import, which jest's module sandbox cannot run.
 * So this file is also a script: jest runs it as a test, which starts it again in plain Node (TypeScript
 * transpiled on load) to run one scenario against the real exporter and print the result as JSON.
 */
const SCENARIO = 'CRI_PROXY_TRACING_EXPORTER_SCENARIO';
const VERSION = '/runtime.v1.RuntimeService/Version';

type Scenario = 'collector' | 'silent-collector' | 'one-export';

interface ScenarioResult {
  readonly codes: number[];
  /** Export failures counted while the silent collector still held the export. */
  readonly failuresWhileHeld: number;
  readonly failuresAfterCut: number;
  /** Different exports (request bodies; a retry repeats its export's) the collector saw. */
  readonly exportsSeen: number;
  readonly requests: { readonly path: string; readonly apiKey: string | undefined; readonly body: string }[];
}

async function listenOnLoopback(server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

async function until(check: () => Promise<boolean>): Promise<void> {
  // The parent's jest timeout bounds this; here it only waits for the event.
  while (!(await check())) await new Promise((r) => setTimeout(r, 10));
}

async function runScenario(scenario: Scenario): Promise<ScenarioResult> {
  const requests: ScenarioResult['requests'][number][] = [];
  const held: http.ServerResponse[] = [];
  let refusing = false;
  const refuse = (res: http.ServerResponse): void => {
    // 400 is not retried: the export fails at once.
    res.writeHead(400, { 'content-type': 'text/plain' }).end('refused');
  };
  const collector = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const apiKey = req.headers['x-api-key'];
      requests.push({
        path: req.url ?? '',
        apiKey: typeof apiKey === 'string' ? apiKey : undefined,
        body: Buffer.concat(chunks).toString('latin1'),
      });
      // The silent collector takes the export and never answers it.
      if (refusing) refuse(res);
      else if (scenario !== 'collector') held.push(res);
      else res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  const port = await listenOnLoopback(collector);
  const registry = new Registry();
  const config = tracingConfigSchema.parse({
    serviceName: 'svc-under-test',
    // Every call traced (the calls sent are polling ones, which are not by default).
    pollingSamplingRatio: 1,
    // An export timeout far beyond the test: calls that waited on the exporter would never finish in time.
    exporter: { type: 'otlp-http', endpoint: `http://127.0.0.1:${port}/v1/traces`, headers: { 'x-api-key': 'k-123' }, timeoutMs: 600_000 },
  });
  const upstream = new Upstream({
    name: 'unused',
    socketPath: '/nonexistent.sock',
    connectTimeoutMs: 1,
    maxMessageBytes: 1024,
    log: silentLogger,
  });
  const interceptor = createTracingInterceptor(config, {
    name: 'tracing',
    log: silentLogger,
    registry,
    router: new Router([upstream], 'unused'),
  });
  const proxy = await startTestProxy({ entries: [{ interceptor, onError: 'failClosed', methods: undefined }] });
  const client = proxy.client();
  const failures = async (): Promise<number> =>
    (await sample(registry, 'cri_proxy_trace_export_failures_total', { interceptor: 'tracing', exporter: 'otlp-http' })) ?? 0;
  const codes = new Set<number>();
  const call = async (): Promise<void> => {
    codes.add((await client.unary(VERSION, Buffer.alloc(0))).status.code);
  };
  await call();
  let failuresWhileHeld = 0;
  let failuresAfterCut = 0;
  if (scenario === 'one-export') {
    // Three batches' worth: the first goes out and is held; closing then flushes the other two at once.
    for (let i = 0; i < 30; i++) await Promise.all(Array.from({ length: 50 }, call));
    await until(() => Promise.resolve(held.length > 0));
  }
  if (scenario === 'silent-collector') {
    // The batch processor's scheduled export arrives and is held; calls go on meanwhile. Then the collector
    // turns the held export down.
    await until(() => Promise.resolve(held.length > 0));
    await Promise.all(Array.from({ length: 50 }, call));
    failuresWhileHeld = await failures();
    refusing = true;
    for (const res of held) refuse(res);
    await until(async () => (await failures()) > 0);
    failuresAfterCut = await failures();
  }
  // Closing flushes what is queued (to the collector, or failing fast against the one that was cut).
  await interceptor.close?.();
  const exportsSeen = new Set(requests.map((r) => r.body)).size;
  if (scenario === 'one-export') failuresAfterCut = await failures();
  await proxy.close();
  collector.closeAllConnections();
  collector.close();
  return { codes: [...codes], failuresWhileHeld, failuresAfterCut, exportsSeen, requests };
}

const CHILD_LOADER = `
const fs = require('fs');
const ts = require('typescript');
require.extensions['.ts'] = (m, file) => m._compile(ts.transpileModule(fs.readFileSync(file, 'utf8'), {
  fileName: file,
  compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
}).outputText, file);
require(process.argv[1]);
`;

function inChild(scenario: Scenario): Promise<ScenarioResult> {
  return new Promise((resolve, reject) => {
    const cwd = path.resolve(__dirname, '../..');
    execFile(
      process.execPath,
      ['-e', CHILD_LOADER, __filename],
      { cwd, timeout: 30_000, env: { ...process.env, [SCENARIO]: scenario } },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${err.message}\n${stderr}`));
        else resolve(JSON.parse(stdout) as ScenarioResult);
      },
    );
  });
}

const child = process.env[SCENARIO] as Scenario | undefined;
if (child) {
  runScenario(child).then(
    (result) => process.stdout.write(JSON.stringify(result)),
    (err: unknown) => {
      process.stderr.write(String(err));
      process.exitCode = 1;
    },
  );
} else {
  describe('tracing interceptor: OTLP/HTTP export (plain Node child process)', () => {
    test('spans reach the collector with the configured headers and service name', async () => {
      const result = await inChild('collector');
      expect(result.codes).toEqual([0]);
      expect(result.requests.length).toBeGreaterThanOrEqual(1);
      expect(result.requests.every((r) => r.path === '/v1/traces' && r.apiKey === 'k-123')).toBe(true);
      expect(result.requests.some((r) => r.body.includes('svc-under-test') && r.body.includes('runtime.v1.RuntimeService/Version'))).toBe(
        true,
      );
    }, 40_000);

    test('calls go on while a collector holds an export unanswered; the failed export is counted; close() returns', async () => {
      const result = await inChild('silent-collector');
      expect(result.codes).toEqual([0]);
      expect(result.failuresWhileHeld).toBe(0);
      expect(result.failuresAfterCut).toBeGreaterThanOrEqual(1);
    }, 40_000);

    test('one export at a time: batches due while a collector holds one are dropped and counted, not piled up', async () => {
      const result = await inChild('one-export');
      expect(result.codes).toEqual([0]);
      expect(result.exportsSeen).toBe(1);
      expect(result.failuresAfterCut).toBeGreaterThanOrEqual(1);
    }, 40_000);
  });
}
