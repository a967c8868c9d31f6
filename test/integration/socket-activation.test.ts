/**
 * Socket activation without systemd as PID 1: a parent process holds the listening socket and starts,
 * stops and restarts the built command on it, as cri-proxy.socket and cri-proxy.service do.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { FakeRuntime } from '../support/fake-runtime';
import { RawClient, makeTempDir, type RawResult } from '../support/proxy-harness';
import { SocketActivation } from '../support/socket-activation';
import { waitFor } from '../support/wait';

jest.setTimeout(60_000);

const CLI = path.resolve(__dirname, '../../dist/src/cli.js');
const VERSION = '/runtime.v1.RuntimeService/Version';

interface Outcome {
  readonly code: grpc.status;
  readonly details: string;
}

/** Clients calling Version back to back until stopped, each call with a generous deadline. */
class CallLoops {
  readonly outcomes: Outcome[] = [];
  private stopped = false;
  private readonly loops: Promise<void>[];

  constructor(clients: readonly RawClient[]) {
    this.loops = clients.map((client) => this.loop(client));
  }

  private async loop(client: RawClient): Promise<void> {
    while (!this.stopped) {
      const result: RawResult = await client.unary(VERSION, Buffer.alloc(0), new grpc.Metadata(), { deadline: Date.now() + 30_000 });
      this.outcomes.push({ code: result.status.code, details: result.status.details });
    }
  }

  succeeded(): number {
    return this.outcomes.filter((o) => o.code === grpc.status.OK).length;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }
}

/** Resolves once the client has seen its connection close (its channel is no longer READY). */
function connectionLost(client: RawClient): Promise<void> {
  const channel = client.client.getChannel();
  return new Promise((resolve, reject) => {
    const check = (): void => {
      const state = channel.getConnectivityState(false);
      if (state !== grpc.connectivityState.READY) resolve();
      else channel.watchConnectivityState(state, Date.now() + 30_000, (err) => (err ? reject(err) : check()));
    };
    check();
  });
}

describe('socket activation', () => {
  let dir: string;
  let runtime: FakeRuntime;
  let activation: SocketActivation | undefined;
  let parent: SocketActivation;
  let clients: RawClient[];
  let socketPath: string;

  let notifyRecord: string;

  beforeEach(async () => {
    dir = makeTempDir();
    // A systemd-notify that records what it was asked to send, found first on PATH.
    notifyRecord = path.join(dir, 'notified');
    fs.writeFileSync(path.join(dir, 'systemd-notify'), `#!/bin/sh\necho "$*" >> "${notifyRecord}"\n`, { mode: 0o755 });
    const env = { ...process.env, PATH: `${dir}:${process.env['PATH'] ?? ''}`, NOTIFY_SOCKET: path.join(dir, 'notify') };
    runtime = new FakeRuntime(path.join(dir, 'runtime.sock'));
    await runtime.start();
    clients = [];
    socketPath = path.join(dir, 'cri-proxy.sock');
    const config = path.join(dir, 'config.yaml');
    // socketMode and listen differ from the socket handed in: the proxy must leave that file alone.
    fs.writeFileSync(
      config,
      [
        `listen: unix://${path.join(dir, 'elsewhere.sock')}`,
        'socketMode: "0600"',
        'logLevel: warn',
        'shutdownGraceSeconds: 20',
        'http:',
        '  listen: ""',
        'backends:',
        '  - name: fake',
        `    endpoint: unix://${runtime.socketPath}`,
      ].join('\n'),
    );
    parent = await SocketActivation.create(
      socketPath,
      path.join(dir, 'proxy.log'),
      'cri-proxy',
      process.execPath,
      [CLI, '--config', config],
      env,
    );
    activation = parent;
    fs.chmodSync(socketPath, 0o640);
  });

  afterEach(async () => {
    for (const c of clients) c.close();
    await activation?.close();
    await runtime.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function client(): RawClient {
    const c = new RawClient(`unix:${socketPath}`);
    clients.push(c);
    return c;
  }

  function notified(): string[] {
    return fs.existsSync(notifyRecord) ? fs.readFileSync(notifyRecord, 'utf8').trim().split('\n') : [];
  }

  function log(): string {
    return fs.readFileSync(path.join(dir, 'proxy.log'), 'utf8');
  }

  test('a graceful restart (SIGTERM) fails no call: calls made meanwhile wait for the next process', async () => {
    const before = fs.statSync(socketPath);
    const first = await parent.start();
    const loops = new CallLoops([client(), client(), client()]);
    await waitFor(() => loops.succeeded() >= 30, 20_000);

    // A call in flight when SIGTERM arrives still gets its answer from the old process.
    runtime.on('StopContainer', { delayMs: 500 });
    const slow = client().unary('/runtime.v1.RuntimeService/StopContainer', Buffer.alloc(0));
    await waitFor(() => runtime.lastCall('StopContainer') !== undefined);

    parent.signal('SIGTERM');
    const stopped = await parent.exited(first);
    expect(stopped).toMatchObject({ code: 0, signal: null });
    expect((await slow).status.code).toBe(grpc.status.OK);
    const okBefore = loops.succeeded();
    // Calls made while nothing serves the socket wait in its backlog, on the clients' open channels and on a
    // new one alike.
    const madeWhileDown = [...clients.slice(0, 2), client()].map((c) =>
      c.unary(VERSION, Buffer.alloc(0), new grpc.Metadata(), { deadline: Date.now() + 30_000 }),
    );

    const second = await parent.start();
    await waitFor(() => loops.succeeded() >= okBefore + 30, 20_000);
    await loops.stop();

    expect(loops.outcomes.filter((o) => o.code !== grpc.status.OK)).toEqual([]);
    expect((await Promise.all(madeWhileDown)).map((r) => r.status.code)).toEqual([grpc.status.OK, grpc.status.OK, grpc.status.OK]);

    parent.signal('SIGTERM');
    expect(await parent.exited(second)).toMatchObject({ code: 0, signal: null });
    // The socket is systemd's: same file, same mode, still there after the proxy stopped.
    const after = fs.statSync(socketPath);
    expect({ ino: after.ino, mode: after.mode & 0o777 }).toEqual({ ino: before.ino, mode: 0o640 });
    expect(fs.existsSync(path.join(dir, 'elsewhere.sock'))).toBe(false);
    expect(log()).not.toMatch(/"level":"error"/);
  });

  test('after a crash (SIGKILL) calls made while it is down are served by the restarted process', async () => {
    const c = client();
    const first = await parent.start();
    expect((await c.unary(VERSION, Buffer.alloc(0))).status.code).toBe(grpc.status.OK);
    parent.signal('SIGKILL');
    expect(await parent.exited(first)).toMatchObject({ signal: 'SIGKILL' });
    // A call sent on the connection to the killed process fails (UNAVAILABLE, "Connection dropped"): nothing can
    // answer it. The client learns of that connection's end on its own time, possibly after the exit is known
    // here; only calls made after that go through the held socket, as kubelet's retries do.
    await connectionLost(c);

    const calls = [c, client()].map((each) => each.unary(VERSION, Buffer.alloc(0), new grpc.Metadata(), { deadline: Date.now() + 30_000 }));
    await parent.start();
    const results = await Promise.all(calls);
    expect(results.map((r) => r.status.code)).toEqual([grpc.status.OK, grpc.status.OK]);
  });

  test('tells systemd READY=1 only once the runtime answers, and STOPPING=1 on SIGTERM', async () => {
    await runtime.stop();
    const pid = await parent.start();
    await waitFor(() => notified().some((line) => line.startsWith('STATUS=waiting for the runtime')), 20_000);
    expect(notified().filter((line) => line.includes('READY=1'))).toEqual([]);
    await runtime.start();
    await waitFor(() => notified().some((line) => line.startsWith('READY=1')), 20_000);
    // Readiness is a Version call that went through the proxy to the runtime.
    expect(runtime.calls.some((call) => call.path === VERSION)).toBe(true);
    parent.signal('SIGTERM');
    expect(await parent.exited(pid)).toMatchObject({ code: 0 });
    await waitFor(() => notified().includes('STOPPING=1'), 20_000);
  });
});
