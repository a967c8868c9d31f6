/**
 * SIGTERM with a trace collector that accepts connections and never answers: queued spans get a bounded
 * flush (exporter.shutdownTimeoutMs, 1 s by default) instead of the export timeout, so the proxy exits
 * promptly; a call in flight still gets the whole grace period.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { FakeRuntime } from '../support/fake-runtime';
import { RawClient, makeTempDir } from '../support/proxy-harness';
import { waitFor } from '../support/wait';

jest.setTimeout(60_000);

const CLI = path.resolve(__dirname, '../../dist/src/cli.js');

/** Stands in for a collector gone bad: takes every connection and every byte, answers nothing. */
async function blackHole(): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const server = net.createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.resume();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    connections: () => accepted,
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
    // A traced call queues a span; the export it triggers on stop goes into the black hole.
    expect((await c.unary('/runtime.v1.RuntimeService/Version', Buffer.alloc(0))).status.code).toBe(grpc.status.OK);

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

  test('an idle proxy exits within the bound after SIGTERM', async () => {
    const { socket, config } = writeTracingConfig(dir, runtime.socketPath, [
      '    config:',
      '      exporter:',
      '        type: otlp-grpc',
      `        endpoint: http://127.0.0.1:${collector.port}`,
      '        timeoutMs: 60000',
    ]);
    const child = spawn(process.execPath, [CLI, '--config', config], { stdio: 'ignore' });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await waitFor(() => fs.existsSync(socket), 20_000);
    const c = new RawClient(`unix:${socket}`);
    client = c;
    expect((await c.unary('/runtime.v1.RuntimeService/Status', Buffer.alloc(0))).status.code).toBe(grpc.status.OK);
    c.close();
    client = undefined;
    const signalled = Date.now();
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(Date.now() - signalled).toBeLessThan(5000);
  });
});
