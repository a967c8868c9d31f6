import * as fs from 'node:fs';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { encodeMessage } from '../../src/messages/codec';
import { frameMessage } from '../../src/proxy/grpc-frames';
import { startTestProxy, type TestProxy } from '../support/proxy-harness';
import { spawnSync } from 'node:child_process';
import { ProxyServer } from '../../src/proxy/server';

interface RawResponse {
  status: number | undefined;
  grpcStatus: string | undefined;
  body: Buffer;
  rstCode: number | undefined;
}

/** One gRPC call by hand over node:http2, so the test controls every header, `:authority` included. */
function rawCall(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body: Buffer): Promise<RawResponse> {
  return new Promise((resolve) => {
    const req = session.request({
      ':method': 'POST',
      ':path': '/runtime.v1.RuntimeService/Version',
      'content-type': 'application/grpc',
      te: 'trailers',
      ...headers,
    });
    const chunks: Buffer[] = [];
    let status: number | undefined;
    let grpcStatus: string | undefined;
    req.on('response', (h) => {
      status = h[':status'];
      const s = h['grpc-status'];
      if (typeof s === 'string') grpcStatus = s;
    });
    req.on('trailers', (t: http2.IncomingHttpHeaders) => {
      const s = t['grpc-status'];
      if (typeof s === 'string') grpcStatus = s;
    });
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => undefined);
    req.on('close', () => resolve({ status, grpcStatus, body: Buffer.concat(chunks), rstCode: req.rstCode }));
    req.end(body);
  });
}

describe('client connections', () => {
  let proxy: TestProxy;
  afterEach(async () => {
    await proxy.close();
  });

  test.each([
    ['a socket path', '/run/cri-proxy/cri-proxy.sock'],
    ['a percent-free hostname', 'localhost'],
  ])(':authority set to %s is served, call after call on one connection', async (_label, authority) => {
    proxy = await startTestProxy();
    const session = http2.connect('http://localhost', { createConnection: () => net.connect(proxy.socketPath) });
    session.on('error', () => undefined);
    const body = frameMessage(encodeMessage('runtime.v1.VersionRequest', { version: 'v1' }));
    const big = 'x'.repeat(40_000); // forces CONTINUATION frames
    for (const extra of [{}, { 'x-trace': 'a' }, { 'x-big': big }, {}]) {
      const response = await rawCall(session, { ':authority': authority, ...extra }, body);
      expect(response).toMatchObject({ status: 200, grpcStatus: '0', rstCode: 0 });
      expect(response.body.length).toBeGreaterThan(5);
    }
    expect(proxy.runtime.calls.map((c) => c.metadata['x-big'])).toEqual([undefined, undefined, big, undefined]);
    session.close();
  });

  test('an unreachable runtime gives UNAVAILABLE naming the socket at once, not at the deadline, then recovers', async () => {
    proxy = await startTestProxy({ runtimeDown: true });
    const client = proxy.client();
    // A proxy that waited for the runtime would end this call with DEADLINE_EXCEEDED (or outlast the test).
    const down = await client.unary('/runtime.v1.RuntimeService/Version', Buffer.alloc(0), undefined, { deadline: Date.now() + 600_000 });
    expect(down.status.code).toBe(grpc.status.UNAVAILABLE);
    expect(down.status.details).toContain(proxy.runtime.socketPath);
    await proxy.runtime.start();
    const up = await client.unary('/runtime.v1.RuntimeService/Version', Buffer.alloc(0));
    expect(up.status.code).toBe(grpc.status.OK);
    // A restart of the runtime is survived too.
    await proxy.runtime.stop();
    await proxy.runtime.start();
    const again = await client.unary('/runtime.v1.RuntimeService/Version', Buffer.alloc(0));
    expect(again.status.code).toBe(grpc.status.OK);
  });

  // About 33 MB through a paused reader: on a busy machine that takes longer than jest's default timeout.
  test('a stream to a reader that stops keeps the backlog to flow-control windows, not the stream', async () => {
    proxy = await startTestProxy();
    // Bounded in work, not time: a fixed number of large events. Every 1,000 events the reader stops until
    // the runtime itself is held back by flow control with at least LEAD events queued ahead of it (about
    // 420 KB: more than the client's window and the socket buffers hold, so the proxy's own window to the
    // runtime has filled); were the proxy to buffer without bound, the runtime would never be held back and
    // would run to the end instead.
    const EVENTS = 8000;
    const LEAD = 100;
    const event = encodeMessage('runtime.v1.ContainerEventResponse', { container_id: 'c'.repeat(64), created_at: '1' });
    const payload = Buffer.concat([event, Buffer.alloc(4096)]);
    let produced = 0;
    let received = 0;
    let peakBacklog = 0;
    let peakBuffers = 0;
    let resume: (() => void) | undefined;
    const baseline = process.memoryUsage().arrayBuffers;
    const measure = (): void => {
      peakBacklog = Math.max(peakBacklog, produced - received);
      peakBuffers = Math.max(peakBuffers, process.memoryUsage().arrayBuffers - baseline);
    };
    proxy.runtime.on('GetContainerEvents', {
      stream: function* () {
        for (; produced < EVENTS; produced++) yield payload;
        measure();
        resume?.();
      },
      onBackpressure: () => {
        measure();
        if (produced - received >= LEAD) resume?.();
      },
    });
    const stream = proxy.client().serverStream('/runtime.v1.RuntimeService/GetContainerEvents', Buffer.alloc(0));
    const done = new Promise<grpc.StatusObject>((resolve) => stream.on('status', resolve));
    let pauses = 0;
    stream.on('data', () => {
      received++;
      if (received % 1000 !== 0) return;
      stream.pause();
      pauses++;
      resume = () => {
        resume = undefined;
        stream.resume();
      };
      if (produced === EVENTS) resume();
    });
    const status = await done;
    expect(status.code).toBe(grpc.status.OK);
    expect(received).toBe(EVENTS);
    expect(pauses).toBe(EVENTS / 1000);
    // ~33 MB went through; flow control holds the runtime back within a few window sizes (about 1.5 MB here).
    expect(peakBacklog).toBeGreaterThanOrEqual(LEAD);
    expect(peakBacklog).toBeLessThan(EVENTS / 2);
    expect(peakBuffers).toBeLessThan(64 * 1024 * 1024);
  }, 60_000);

  test('a stale socket file is replaced and the socket gets mode 0660', async () => {
    proxy = await startTestProxy();
    const stale = path.join(proxy.dir, 'stale.sock');
    // A process killed while listening leaves a socket file nobody serves.
    const script = `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`;
    spawnSync(process.execPath, ['-e', script]);
    expect(fs.statSync(stale).isSocket()).toBe(true);
    const second = new ProxyServer({ ...proxy.serverOptions, socket: { path: stale, mode: 0o660 } });
    await second.listen();
    expect(fs.statSync(stale).mode & 0o777).toBe(0o660);
    await second.close(10);
  });

  test('a socket another live process serves is not taken over', async () => {
    proxy = await startTestProxy();
    const second = new ProxyServer({ ...proxy.serverOptions, socket: { path: proxy.socketPath, mode: 0o660 } });
    await expect(second.listen()).rejects.toThrow(/another process is serving/);
    const stillServed = await proxy.client().unary('/runtime.v1.RuntimeService/Version', Buffer.alloc(0));
    expect(stillServed.status.code).toBe(grpc.status.OK);
  });
});
