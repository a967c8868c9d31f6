/**
 * SIGTERM with a trace collector that accepts connections and never answers: queued spans get a bounded
 * flush (exporter.shutdownTimeoutMs, 1 s by default) instead of the export timeout; an export already sent is
 * not waited for at all, so an idle proxy is gone at once; a call in flight still gets the whole grace period.
 *
 * How promptness is measured without timing the machine: the stop is required to leave nothing running (no
 * socket, timer or lookup of the exporter: checked in-process once stop() resolves), which is what makes the
 * process end the moment it is told to; and the processes' exit is checked against bounds set far from what the
 * defect costs (the 60 s export timeout), which a busy machine does not reach.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { App } from '../../src/app';
import { builtinTypes } from '../../src/commands/builtin-types';
import { validateProxyConfig } from '../../src/config/schema';
import { silentLogger } from '../../src/log';
import { FakeRuntime } from '../support/fake-runtime';
import { RawClient, makeTempDir } from '../support/proxy-harness';
import { waitFor } from '../support/wait';

jest.setTimeout(60_000);

const CLI = path.resolve(__dirname, '../../dist/src/cli.js');

/** Stands in for a collector gone bad: takes every connection and every byte, answers nothing. */
async function blackHole(): Promise<{
  port: number;
  connections: () => number;
  open: () => number;
  bytes: () => number;
  close: () => Promise<void>;
}> {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  let bytes = 0;
  const server = net.createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => (bytes += chunk.length));
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    connections: () => accepted,
    /** Connections the exporter still holds open. */
    open: () => sockets.size,
    bytes: () => bytes,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** A config with one tracing entry whose lines after `type: tracing` are `entry`; returns its files. */
function writeTracingConfig(dir: string, runtimeSocket: string, entry: readonly string[]): { socket: string; config: string } {
  const socket = path.join(dir, 'proxy.sock');
  const config = path.join(dir, 'config.yaml');
  const head = [
    `listen: unix://${socket}`,
    'logLevel: warn',
    'http:',
    '  listen: ""',
    'backends:',
    '  - name: fake',
    `    endpoint: unix://${runtimeSocket}`,
  ];
  fs.writeFileSync(config, [...head, 'interceptors:', '  - name: tracing', '    type: tracing', ...entry].join('\n'));
  return { socket, config };
}

const EXPORTERS = ['otlp-grpc', 'otlp-http'] as const;
type Exporter = (typeof EXPORTERS)[number];

function exporterConfig(type: Exporter, port: number): { type: string; endpoint: string } {
  const endpoint = type === 'otlp-grpc' ? `http://127.0.0.1:${port}` : `http://127.0.0.1:${port}/v1/traces`;
  return { type, endpoint };
}

function exporterLines(type: Exporter, port: number): string[] {
  const { endpoint } = exporterConfig(type, port);
  return [`        type: ${type}`, `        endpoint: ${endpoint}`];
}

/**
 * A collector that speaks the protocol and takes exports, never answering them: HTTP/1.1 requests, or gRPC calls
 * on an HTTP/2 connection, left open.
 */
async function silentCollector(
  type: Exporter,
): Promise<{ port: number; bytes: () => number; open: () => number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  let bytes = 0;
  const count = (chunk: Buffer): void => {
    bytes += chunk.length;
  };
  const server: net.Server =
    type === 'otlp-grpc'
      ? http2.createServer().on('stream', (stream) => stream.on('data', count))
      : http.createServer((request) => request.on('data', count));
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    bytes: () => bytes,
    open: () => sockets.size,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * The resources in `after` that `before` did not have (by kind, counted), but for callbacks due on the next turn
 * of the event loop (setImmediate): those cannot hold a process up.
 */
function leftOver(before: readonly string[], after: readonly string[]): string[] {
  const remaining = [...before];
  return after.filter((kind) => {
    if (kind === 'Immediate') return false;
    const i = remaining.indexOf(kind);
    if (i < 0) return true;
    remaining.splice(i, 1);
    return false;
  });
}

describe('stopping with an unresponsive trace collector', () => {
  let dir: string;
  let runtime: FakeRuntime;
  let collector: Awaited<ReturnType<typeof blackHole>>;
  let client: RawClient | undefined;

  beforeEach(async () => {
    dir = makeTempDir();
    runtime = new FakeRuntime(path.join(dir, 'runtime.sock'));
    await runtime.start();
    collector = await blackHole();
  });
  afterEach(async () => {
    client?.close();
    await runtime.stop();
    await collector.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('SIGTERM exits well before the export timeout, after the call in flight has its answer', async () => {
    const { socket, config } = writeTracingConfig(dir, runtime.socketPath, [
      '    onError: failOpen',
      '    config:',
      '      pollingSamplingRatio: 1',
      '      exporter:',
      '        type: otlp-http',
      `        endpoint: http://127.0.0.1:${collector.port}/v1/traces`,
      // Without a bound on the final flush the stop would wait this long for the collector.
      '        timeoutMs: 60000',
    ]);
    const child = spawn(process.execPath, [CLI, '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await waitFor(() => fs.existsSync(socket), 20_000);
    const c = new RawClient(`unix:${socket}`);
    client = c;
    // The socket file appears as it is bound: the first call waits for the connection rather than failing on a refusal.
    // A traced call queues a span; the export it triggers on stop goes into the black hole.
    expect((await c.unary('/runtime.v1.RuntimeService/Version', Buffer.alloc(0), waitingForReady())).status.code).toBe(grpc.status.OK);

    runtime.on('StopContainer', { delayMs: 1500 });
    const inFlight = c.unary('/runtime.v1.RuntimeService/StopContainer', Buffer.alloc(0));
    await waitFor(() => runtime.lastCall('StopContainer') !== undefined);
    const signalled = Date.now();
    child.kill('SIGTERM');
    // Longer than the flush bound: the grace period, not the flush, decides when it ends.
    expect((await inFlight).status.code).toBe(grpc.status.OK);
    expect(await exited).toBe(0);
    const stopMs = Date.now() - signalled;
    // The requirement is 1 s for the flush; the headroom is for a busy machine, far below the 60 s export timeout.
    expect(stopMs).toBeLessThan(1500 + 5000);
    expect(collector.connections()).toBeGreaterThan(0);
    expect(stderr).toMatch(/spans still queued at shutdown were dropped/);
  });

  test.each(EXPORTERS)('%s: an idle proxy whose last export the collector holds is gone promptly after SIGTERM', async (type) => {
    const { socket, config } = writeTracingConfig(dir, runtime.socketPath, [
      '    config:',
      // Status is a polling call: traced only when sampled.
      '      pollingSamplingRatio: 1',
      '      exporter:',
      ...exporterLines(type, collector.port),
      // Were the stop to wait for the export the collector holds, it would take this long.
      '        timeoutMs: 60000',
      '        shutdownTimeoutMs: 60000',
    ]);
    const child = spawn(process.execPath, [CLI, '--config', config], { stdio: 'ignore' });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await waitFor(() => fs.existsSync(socket), 20_000);
    const c = new RawClient(`unix:${socket}`);
    client = c;
    expect((await c.unary('/runtime.v1.RuntimeService/Status', Buffer.alloc(0), waitingForReady())).status.code).toBe(grpc.status.OK);
    c.close();
    client = undefined;
    // Idle: the span went out with the scheduled export, which the collector now holds; nothing is queued.
    await waitFor(() => collector.bytes() > 0, 20_000);
    const signalled = Date.now();
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    // Far below the 60 s a stop waiting on that export would take; the in-process test below shows why.
    expect(Date.now() - signalled).toBeLessThan(10_000);
  });
});

describe('stopping leaves nothing of the exporter running', () => {
  test.each(EXPORTERS)('%s: once stop() resolves no socket, timer or lookup remains', async (type) => {
    const dir = makeTempDir();
    const runtime = new FakeRuntime(path.join(dir, 'runtime.sock'));
    await runtime.start();
    const collector = await silentCollector(type);
    // What the exporter would hold open without the fix lasts this long (its export's socket and timers).
    const exporter = { ...exporterConfig(type, collector.port), timeoutMs: 600_000, shutdownTimeoutMs: 600_000 };
    const validated = validateProxyConfig(
      {
        listen: `unix://${path.join(dir, 'proxy.sock')}`,
        http: { listen: '' },
        backends: [{ name: 'fake', endpoint: `unix://${runtime.socketPath}` }],
        interceptors: [{ name: 'tracing', type: 'tracing', config: { exporter, pollingSamplingRatio: 1 } }],
      },
      builtinTypes(),
    );
    if (!validated.ok) throw new Error(JSON.stringify(validated.issues));
    // What keeps this process's event loop going before the proxy exists: the test's own resources.
    const before = process.getActiveResourcesInfo();
    const app = await App.start(validated.config, { log: silentLogger, registry: new Registry() });
    const client = new RawClient(`unix:${app.socketPath}`);
    try {
      expect((await client.unary('/runtime.v1.RuntimeService/Status', Buffer.alloc(0))).status.code).toBe(grpc.status.OK);
    } finally {
      client.close();
    }
    await waitFor(() => collector.bytes() > 0, 20_000);
    await app.stop(0);
    // The collector sees every connection the exporter made end (the socket was destroyed, not left to time out)...
    await waitFor(() => collector.open() === 0, 20_000);
    await runtime.stop();
    await collector.close();
    // ...and nothing the proxy started is left: no socket, no timer (the export's, a retry's, the batch
    // processor's), no name lookup on the threadpool, which a process would wait for when it exits. Closing
    // connections (the runtime's, the collector's) may take a timer or two to wind down, so this waits for the
    // condition, far within the 600 s a held export would keep its own for; it does not time the machine.
    await waitFor(() => leftOver(before, process.getActiveResourcesInfo()).length === 0, 30_000).catch(() => undefined);
    expect(leftOver(before, process.getActiveResourcesInfo())).toEqual([]);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

/** Metadata for a first call that waits for the connection instead of failing on a refusal. */
function waitingForReady(): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.setOptions({ waitForReady: true });
  return metadata;
}
