/** The running app with two backends and routing: readiness per backend, and a reload with subscribers. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { App } from '../../src/app';
import { builtinTypes } from '../../src/commands/builtin-types';
import { validateProxyConfig, type ProxyConfig } from '../../src/config/schema';
import '../../src/interceptors';
import { silentLogger } from '../../src/log';
import { FakeCri } from '../support/fake-cri';
import { FakeRuntime } from '../support/fake-runtime';
import { RawClient, makeTempDir } from '../support/proxy-harness';
import { methodOf } from '../support/routing-proxy';
import { waitFor } from '../support/wait';

jest.setTimeout(30_000);

let dir: string;
let runtimes: { containerd: FakeRuntime; crio: FakeRuntime };
let cris: FakeCri[];
let app: App | undefined;
let client: RawClient | undefined;

function config(): ProxyConfig {
  const result = validateProxyConfig(
    {
      listen: `unix://${path.join(dir, 'proxy.sock')}`,
      http: { listen: '127.0.0.1:0' },
      shutdownGraceSeconds: 0,
      backends: [
        { name: 'containerd', endpoint: `unix://${runtimes.containerd.socketPath}`, default: true },
        { name: 'crio', endpoint: `unix://${runtimes.crio.socketPath}` },
      ],
      interceptors: [{ name: 'routing', type: 'routing', config: { rules: [{ backend: 'crio', match: { namespaces: ['sandboxed'] } }] } }],
    },
    builtinTypes(),
  );
  if (!result.ok) throw new Error(JSON.stringify(result.issues));
  return result.config;
}

beforeEach(async () => {
  dir = makeTempDir();
  runtimes = { containerd: new FakeRuntime(path.join(dir, 'containerd.sock')), crio: new FakeRuntime(path.join(dir, 'crio.sock')) };
  cris = [new FakeCri(runtimes.containerd, 'containerd'), new FakeCri(runtimes.crio, 'crio')];
  await Promise.all(Object.values(runtimes).map((r) => r.start()));
  app = await App.start(config(), { log: silentLogger, registry: new Registry() });
  client = new RawClient(`unix:${app.socketPath}`);
});

afterEach(async () => {
  client?.close();
  await app?.stop(0);
  for (const cri of cris) cri.endEvents();
  await Promise.all(Object.values(runtimes).map((r) => r.stop()));
  fs.rmSync(dir, { recursive: true, force: true });
});

async function readyz(): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://${app?.adminAddress ?? ''}/readyz`);
  return { status: res.status, body: await res.text() };
}

test('/readyz is ready only when every backend answers, and names each with its state', async () => {
  expect(await readyz()).toEqual({ status: 200, body: 'backend "containerd": ready\nbackend "crio": ready\n' });
  cris[1]?.endEvents();
  await runtimes.crio.stop();
  const down = await readyz();
  expect(down.status).toBe(503);
  const [first, second] = down.body.trimEnd().split('\n');
  expect(first).toBe('backend "containerd": ready');
  expect(second).toMatch(new RegExp(`^backend "crio": not ready: runtime "crio" at unix://${runtimes.crio.socketPath} is unavailable`));
  await runtimes.crio.start();
  expect((await readyz()).status).toBe(200);
});

test('a reload ends event subscribers UNAVAILABLE, so they subscribe again to the new configuration', async () => {
  const stream = client?.serverStream(methodOf('GetContainerEvents').path, Buffer.alloc(0));
  if (stream === undefined) throw new Error('no client');
  stream.on('data', () => undefined);
  stream.on('error', () => undefined);
  const ended = new Promise<grpc.StatusObject>((resolve) => stream.on('status', resolve));
  await waitFor(() => cris.every((c) => c.eventSubscribers === 1));
  await app?.reload(config());
  const status = await ended;
  expect([status.code, status.details]).toEqual([
    grpc.status.UNAVAILABLE,
    'cri-proxy: event merging has stopped (shutting down or reconfigured)',
  ]);
  // The runtimes' streams of the old configuration were cancelled with it.
  await waitFor(() => runtimes.crio.calls.filter((c) => c.name === 'GetContainerEvents').every((c) => c.cancelled));
});
