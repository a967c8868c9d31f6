import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { FakeRuntime } from '../support/fake-runtime';
import { RawClient, makeTempDir } from '../support/proxy-harness';
import { eventually, waitFor } from '../support/wait';

const CLI = path.resolve(__dirname, '../../dist/src/cli.js');

interface Running {
  child: ChildProcess;
  exited: Promise<number | null>;
  stderr: () => string;
}

function startCli(args: string[]): Running {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first`);
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
  child.stdout?.resume();
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited, stderr: () => err };
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function httpGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

describe('the cri-proxy command', () => {
  let dir: string;
  let runtimes: FakeRuntime[];
  let running: Running | undefined;
  let clients: RawClient[];

  beforeEach(() => {
    dir = makeTempDir();
    runtimes = [];
    clients = [];
  });
  afterEach(async () => {
    for (const c of clients) c.close();
    if (running && running.child.exitCode === null) {
      running.child.kill('SIGKILL');
      await running.exited;
    }
    for (const r of runtimes) await r.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function runtime(name: string): Promise<FakeRuntime> {
    const r = new FakeRuntime(path.join(dir, `${name}.sock`));
    await r.start();
    runtimes.push(r);
    return r;
  }

  function writeConfig(file: string, backend: string, port: number, extra = ''): void {
    fs.writeFileSync(
      file,
      `listen: unix://${dir}/proxy.sock\nlogLevel: warn\nhttp:\n  listen: 127.0.0.1:${port}\nbackends:\n  - name: main\n    endpoint: unix://${backend}\n${extra}`,
    );
  }

  async function started(port: number): Promise<void> {
    await waitFor(() => fs.existsSync(path.join(dir, 'proxy.sock')), 10_000);
    // The HTTP listener opens just after the CRI socket.
    await eventually(async () => (await httpGet(`http://127.0.0.1:${port}/healthz`).catch(() => ({ status: 0 }))).status === 200);
  }

  /** A sample of the proxy's own /metrics, e.g. `cri_proxy_config_reloads_total{result="applied"}`. */
  async function metric(port: number, series: string): Promise<number | undefined> {
    const { body } = await httpGet(`http://127.0.0.1:${port}/metrics`);
    const line = body.split('\n').find((l) => l.startsWith(`${series} `));
    return line === undefined ? undefined : Number(line.slice(series.length + 1));
  }

  function client(): RawClient {
    const c = new RawClient(`unix:${dir}/proxy.sock`);
    clients.push(c);
    return c;
  }

  test('serves health and readiness, and SIGTERM lets a call in flight finish before exiting 0', async () => {
    const fake = await runtime('a');
    const port = await freePort();
    const config = path.join(dir, 'config.yaml');
    writeConfig(config, fake.socketPath, port);
    running = startCli(['--config', config]);
    await started(port);
    // Ready once the proxy has finished starting and the runtime answered its Version.
    await eventually(async () => (await httpGet(`http://127.0.0.1:${port}/readyz`)).status === 200);

    fake.on('StopContainer', { delayMs: 500 });
    const inFlight = client().unary('/runtime.v1.RuntimeService/StopContainer', Buffer.alloc(0));
    await waitFor(() => fake.lastCall('StopContainer') !== undefined);
    running.child.kill('SIGTERM');
    const result = await inFlight;
    expect(result.status.code).toBe(grpc.status.OK);
    expect(await running.exited).toBe(0);
    expect(fs.existsSync(path.join(dir, 'proxy.sock'))).toBe(false);
  });

  test('readiness follows the runtime', async () => {
    const fake = await runtime('a');
    const port = await freePort();
    const config = path.join(dir, 'config.yaml');
    writeConfig(config, fake.socketPath, port);
    running = startCli(['--config', config]);
    await started(port);
    await fake.stop();
    expect((await httpGet(`http://127.0.0.1:${port}/readyz`)).status).toBe(503);
    await fake.start();
    expect((await httpGet(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);
  });

  test('SIGHUP swaps the config; a bad one is refused and the old one kept', async () => {
    const first = await runtime('a');
    const second = await runtime('b');
    const port = await freePort();
    const config = path.join(dir, 'config.yaml');
    writeConfig(config, first.socketPath, port);
    running = startCli(['--config', config]);
    await started(port);
    const c = client();
    expect((await c.unary('/runtime.v1.RuntimeService/Status', Buffer.alloc(0))).status.code).toBe(0);
    // The proxy's own calls (its warm-up Version on each runtime) are not the client's.
    const fromClient = (r: FakeRuntime): number => r.calls.filter((call) => call.metadata['user-agent'] !== 'cri-proxy').length;
    expect(fromClient(first)).toBe(1);

    writeConfig(config, second.socketPath, port);
    running.child.kill('SIGHUP');
    await eventually(async () => (await metric(port, 'cri_proxy_config_reloads_total{result="applied"}')) === 1);
    expect((await c.unary('/runtime.v1.RuntimeService/Version', Buffer.alloc(0))).status.code).toBe(0);
    expect(fromClient(second)).toBe(1);

    fs.writeFileSync(config, 'backends: [{ name: x, endpoint: relative/path }]\n');
    running.child.kill('SIGHUP');
    await eventually(async () => (await metric(port, 'cri_proxy_config_reloads_total{result="rejected"}')) === 1);
    expect(await metric(port, 'cri_proxy_config_last_reload_successful')).toBe(0);
    const before = fromClient(second);
    expect((await c.unary('/runtime.v1.RuntimeService/Status', Buffer.alloc(0))).status.code).toBe(0);
    expect(fromClient(second)).toBe(before + 1);
    expect(running.child.exitCode).toBeNull();
  });

  test('a malformed config fails at startup with the path of the bad key: exit 3', async () => {
    const config = path.join(dir, 'config.yaml');
    fs.writeFileSync(config, 'backends:\n  - name: main\n    endpoint: unix:///x.sock\n    conectTimeoutMs: 5\n');
    running = startCli(['--config', config]);
    expect(await running.exited).toBe(3);
    expect(running.stderr()).toContain('backends[0].conectTimeoutMs');
  });

  test('a busy HTTP port fails startup naming the setting, exit 4, and leaves no socket behind', async () => {
    const fake = await runtime('a');
    const busy = net.createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const port = (busy.address() as net.AddressInfo).port;
    try {
      running = startCli(['--listen', `unix://${dir}/proxy.sock`, '--upstream', fake.socketPath, '--http-listen', `127.0.0.1:${port}`]);
      expect(await running.exited).toBe(4);
      expect(running.stderr()).toContain(`http.listen: 127.0.0.1:${port} is in use`);
      expect(running.stderr()).not.toContain('EADDRINUSE');
      expect(fs.existsSync(path.join(dir, 'proxy.sock'))).toBe(false);
    } finally {
      busy.close();
    }
  });

  test("a second proxy on a running one's config fails on the socket, exit 4, and touches nothing of the first", async () => {
    const fake = await runtime('a');
    const port = await freePort();
    const config = path.join(dir, 'config.yaml');
    const audit = path.join(dir, 'audit', 'audit.log');
    writeConfig(config, fake.socketPath, port, `interceptors:\n  - name: audit\n    type: audit\n    config: { path: ${audit} }\n`);
    running = startCli(['--config', config]);
    await started(port);
    expect((await client().unary('/runtime.v1.RuntimeService/StartContainer', Buffer.alloc(0))).status.code).toBe(grpc.status.OK);
    // Ready: the runtime answered a Version call that went after the first proxy's own warm-up call, on the same
    // connection, so that one (however slow on a busy machine) is recorded by now.
    await eventually(async () => (await httpGet(`http://127.0.0.1:${port}/readyz`).catch(() => ({ status: 0 }))).status === 200);
    const auditBefore = fs.readFileSync(audit);
    const callsBefore = fake.calls.length;

    // At log level info the second would log the audit chain head had it opened the log.
    const second = startCli(['--config', config, '--log-level', 'info']);
    expect(await second.exited).toBe(4);
    expect(second.stderr()).toContain(`listen: unix://${dir}/proxy.sock cannot be opened: another process is serving`);
    expect(fs.readFileSync(audit).equals(auditBefore)).toBe(true);
    const logged = second
      .stderr()
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { auditChainHead?: unknown });
    expect(logged.filter((record) => record.auditChainHead !== undefined)).toEqual([]);
    // It did not even open a connection to the runtimes (its warm-up would have called Version).
    expect(fake.calls.length).toBe(callsBefore);
    // The first goes on serving, and records as before.
    expect((await client().unary('/runtime.v1.RuntimeService/StartContainer', Buffer.alloc(0))).status.code).toBe(grpc.status.OK);
    expect(fs.readFileSync(audit).subarray(0, auditBefore.length).equals(auditBefore)).toBe(true);
  });

  test('a socket directory that cannot be created fails startup naming the setting, exit 4', async () => {
    const fake = await runtime('a');
    fs.writeFileSync(path.join(dir, 'plain-file'), '');
    const listen = `unix://${dir}/plain-file/proxy.sock`;
    running = startCli(['--listen', listen, '--upstream', fake.socketPath, '--http-listen', '']);
    expect(await running.exited).toBe(4);
    expect(running.stderr()).toContain(`listen: ${listen} cannot be created: ${dir}/plain-file exists and is not a directory`);
  });

  test('--http-listen "" runs the proxy without the HTTP listener', async () => {
    const fake = await runtime('a');
    const port = await freePort();
    writeConfig(path.join(dir, 'config.yaml'), fake.socketPath, port);
    running = startCli(['--config', path.join(dir, 'config.yaml'), '--http-listen', '']);
    await waitFor(() => fs.existsSync(path.join(dir, 'proxy.sock')), 10_000);
    expect((await client().unary('/runtime.v1.RuntimeService/Version', Buffer.alloc(0))).status.code).toBe(0);
    await expect(httpGet(`http://127.0.0.1:${port}/healthz`)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  test('config validate and config print have their own --help', async () => {
    for (const [args, first] of [
      [['config', 'validate', '--help'], 'Usage: cri-proxy config validate FILE'],
      [['config', 'print', '--help'], 'Usage: cri-proxy config print'],
    ] as const) {
      const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      expect(code).toBe(0);
      expect(out.split('\n')[0]?.startsWith(first)).toBe(true);
      expect(out).toContain('Exit status:');
    }
  });
});
