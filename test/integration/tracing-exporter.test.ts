import { execFile } from 'node:child_process';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { Registry } from 'prom-client';
import { createTracingInterceptor, tracingConfigSchema } from '../../src/interceptors/tracing';
import { createLogger, silentLogger } from '../../src/log';
import { Router } from '../../src/proxy/router';
import { Upstream } from '../../src/proxy/upstream';
import { startTestProxy } from '../support/proxy-harness';

/*
 * The OTLP/HTTP exporter loads node:http with a native dynamic import, which jest's module sandbox cannot run.
 * So this file is also a script: jest runs it as a test, which starts it again in plain Node (TypeScript
 * transpiled on load) to run one scenario against the real exporter and print the result as JSON.
 */
const SCENARIO = 'CRI_PROXY_TRACING_EXPORTER_SCENARIO';
const VERSION = '/runtime.v1.RuntimeService/Version';

type Scenario = 'collector' | 'closed-port';

interface ScenarioResult {
  readonly codes: number[];
  readonly p99Ms: number;
  readonly closeMs: number;
  readonly exportFailuresLogged: number;
  readonly requests: { readonly path: string; readonly apiKey: string | undefined; readonly body: string }[];
}

async function listenOnLoopback(server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

async function runScenario(scenario: Scenario): Promise<ScenarioResult> {
  const requests: ScenarioResult['requests'][number][] = [];
  const collector = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const apiKey = req.headers['x-api-key'];
      requests.push({ path: req.url ?? '', apiKey: typeof apiKey === 'string' ? apiKey : undefined, body: Buffer.concat(chunks).toString('latin1') });
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  const port = await listenOnLoopback(collector);
  if (scenario === 'closed-port') await new Promise<void>((resolve) => collector.close(() => resolve()));
  let exportFailuresLogged = 0;
  const log = createLogger('warn', (line) => {
    if ((JSON.parse(line) as { exporter?: string }).exporter === 'otlp-http') exportFailuresLogged++;
  });
  const config = tracingConfigSchema.parse({
    serviceName: 'svc-under-test',
    exporter: { type: 'otlp-http', endpoint: `http://127.0.0.1:${port}/v1/traces`, headers: { 'x-api-key': 'k-123' }, timeoutMs: 500 },
  });
  const upstream = new Upstream({ name: 'unused', socketPath: '/nonexistent.sock', connectTimeoutMs: 1, maxMessageBytes: 1024, log: silentLogger });
  const interceptor = createTracingInterceptor(config, { name: 'tracing', log, registry: new Registry(), router: new Router([upstream], 'unused') });
  const proxy = await startTestProxy({ entries: [{ interceptor, onError: 'failClosed', methods: undefined }] });
  const client = proxy.client();
  const codes = new Set<number>();
  const durations: number[] = [];
  // Long enough for the batch processor's scheduled export (every 2 s) to run during the calls.
  const until = Date.now() + (scenario === 'closed-port' ? 2600 : 200);
  const worker = async (): Promise<void> => {
    while (Date.now() < until) {
      const t0 = process.hrtime.bigint();
      const result = await client.unary(VERSION, Buffer.alloc(0));
      durations.push(Number(process.hrtime.bigint() - t0) / 1e6);
      codes.add(result.status.code);
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  const closing = Date.now();
  await interceptor.close?.();
  const closeMs = Date.now() - closing;
  await proxy.close();
  collector.close();
  durations.sort((a, b) => a - b);
  return { codes: [...codes], p99Ms: durations[Math.floor(durations.length * 0.99)] ?? 0, closeMs, exportFailuresLogged, requests };
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
    execFile(process.execPath, ['-e', CHILD_LOADER, __filename], { cwd, timeout: 30_000, env: { ...process.env, [SCENARIO]: scenario } }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout) as ScenarioResult);
    });
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
      expect(result.requests.some((r) => r.body.includes('svc-under-test') && r.body.includes('runtime.v1.RuntimeService/Version'))).toBe(true);
    }, 40_000);

    test('a collector on a closed port never slows or fails calls, and close() stays within the export timeout', async () => {
      const result = await inChild('closed-port');
      expect(result.codes).toEqual([0]);
      // A call held up by the exporter would take its whole 500 ms timeout.
      expect(result.p99Ms).toBeLessThan(250);
      expect(result.exportFailuresLogged).toBeGreaterThanOrEqual(1);
      expect(result.closeMs).toBeLessThan(2000);
    }, 40_000);
  });
}
