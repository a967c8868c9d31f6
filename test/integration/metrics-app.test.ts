import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { App } from '../../src/app';
import type { ProxyConfig } from '../../src/config/schema';
import '../../src/interceptors/metrics';
import { silentLogger } from '../../src/log';
import { appConfig } from '../support/app-config';
import { FakeRuntime } from '../support/fake-runtime';
import { RawClient, makeTempDir } from '../support/proxy-harness';

const VERSION = '/runtime.v1.RuntimeService/Version';

function configFor(dir: string, runtime: FakeRuntime, metricsConfig: Record<string, unknown>): ProxyConfig {
  return appConfig(dir, runtime, { interceptors: [{ name: 'metrics', type: 'metrics', onError: 'failOpen', config: metricsConfig }] });
}

/** The exposition text's value for a series line starting with `prefix`. */
function scraped(text: string, prefix: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(prefix));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

const bucket = (le: string): RegExp => new RegExp(`^cri_proxy_call_duration_seconds_bucket\\{[^}]*le="${le.replace('.', '\\.')}"`, 'm');

describe('metrics interceptor in the running proxy', () => {
  let dir: string;
  let runtime: FakeRuntime;
  let app: App | undefined;
  let client: RawClient | undefined;

  beforeEach(async () => {
    dir = makeTempDir();
    runtime = new FakeRuntime(path.join(dir, 'runtime.sock'));
    await runtime.start();
  });
  afterEach(async () => {
    client?.close();
    await app?.stop(0);
    await runtime.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('/metrics shows the calls; a reload keeps counting and applies new buckets', async () => {
    const registry = new Registry();
    app = await App.start(configFor(dir, runtime, {}), { log: silentLogger, registry });
    client = new RawClient(`unix:${app.socketPath}`);
    const scrape = async (): Promise<string> => (await fetch(`http://${app?.adminAddress ?? ''}/metrics`)).text();
    const calls = 'cri_proxy_calls_total{service="runtime.v1.RuntimeService",method="Version",code="OK",backend="containerd"}';

    expect((await client.unary(VERSION, Buffer.alloc(0))).status.code).toBe(grpc.status.OK);
    let text = await scrape();
    expect(scraped(text, calls)).toBe(1);
    expect(scraped(text, 'cri_proxy_backend_up{backend="containerd"}')).toBe(1);
    expect(text).toMatch(bucket('0.0005'));

    await app.reload(configFor(dir, runtime, { buckets: [0.25, 1] }));
    expect((await client.unary(VERSION, Buffer.alloc(0))).status.code).toBe(grpc.status.OK);
    text = await scrape();
    expect(scraped(text, calls)).toBe(2);
    expect(text).not.toMatch(bucket('0.0005'));
    expect(text).toMatch(bucket('0.25'));
    // The retired generation's collector is gone; the backend is reported once, by the new one.
    expect(text.split('\n').filter((l) => l.startsWith('cri_proxy_backend_up{'))).toHaveLength(1);
  });
});
