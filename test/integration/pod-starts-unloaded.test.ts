/**
 * Pod starts are read on the wire: the built command with no interceptor follows them without ever loading the
 * protobuf library (nor the CRI schema). One that configures an interceptor which decodes does load it: the
 * check can tell the two apart.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { PodStartsAnswer } from '../../src/observability/pod-starts-api';
import { FakeRuntime } from '../support/fake-runtime';
import { startPod } from '../support/kubelet';
import { RawClient, makeTempDir } from '../support/proxy-harness';
import { eventually, waitFor } from '../support/wait';

const CLI = path.resolve(__dirname, '../../dist/src/cli.js');

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function getJson(url: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body)) : reject(new Error(`status ${res.statusCode}`))));
      })
      .on('error', reject);
  });
}

describe('a proxy that follows pod starts', () => {
  let dir: string;
  let runtime: FakeRuntime;

  beforeEach(async () => {
    dir = makeTempDir();
    runtime = new FakeRuntime(path.join(dir, 'runtime.sock'));
    await runtime.start();
  });
  afterEach(async () => {
    await runtime.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Runs the command with `interceptors`, starts a pod with an image pull through it; the modules it loaded. */
  async function modulesAfterPodStart(interceptors: string): Promise<string[]> {
    if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first`);
    const port = await freePort();
    const config = path.join(dir, 'config.yaml');
    fs.writeFileSync(
      config,
      [
        `listen: unix://${dir}/proxy.sock`,
        'logLevel: warn',
        'http:',
        `  listen: 127.0.0.1:${port}`,
        'backends:',
        '  - name: main',
        `    endpoint: unix://${runtime.socketPath}`,
        'podStarts:',
        '  settleMs: 0',
        interceptors,
      ].join('\n'),
    );
    const report = path.join(dir, 'modules.json');
    const preload = path.join(dir, 'report-modules.cjs');
    fs.writeFileSync(
      preload,
      `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(report)}, JSON.stringify(Object.keys(require.cache))));\n`,
    );
    const child = spawn(process.execPath, ['-r', preload, CLI, '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const client = new RawClient(`unix:${dir}/proxy.sock`);
    try {
      await waitFor(() => fs.existsSync(path.join(dir, 'proxy.sock')), 10_000);
      const pod = {
        uid: 'uid-web',
        name: 'web-1',
        namespace: 'shop',
        // One container: with no quiet period (settleMs 0) the start ends at its StartContainer.
        containers: [{ name: 'app', image: 'docker.io/library/nginx:1.27', pullMs: 0, pullBytes: 4096 }],
      };
      expect(await startPod(client, runtime, pod)).toBe(grpc.status.OK);
      // The pod start was read, its fields and the pulled image's size included.
      let answer: PodStartsAnswer | undefined;
      await eventually(async () => {
        answer = (await getJson(`http://127.0.0.1:${port}/api/pods`).catch(() => undefined)) as PodStartsAnswer | undefined;
        return (answer?.podStarts.length ?? 0) > 0;
      });
      expect(answer?.podStarts[0]).toMatchObject({
        uid: 'uid-web',
        name: 'web-1',
        namespace: 'shop',
        sandboxId: 'sb-uid-web',
        status: 'ok',
      });
      expect(answer?.podStarts[0]?.phases).toMatchObject([
        { phase: 'sandbox' },
        { phase: 'pull', image: 'docker.io/library/nginx:1.27', bytes: 4096 },
        { phase: 'create', container: 'app', image: 'docker.io/library/nginx:1.27' },
        { phase: 'start', container: 'app' },
      ]);
    } finally {
      client.close();
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(stderr).not.toMatch(/fault/i);
    return JSON.parse(fs.readFileSync(report, 'utf8')) as string[];
  }

  const protobufjs = (modules: string[]): string[] => modules.filter((m) => m.includes(`${path.sep}protobufjs${path.sep}`));

  test('without interceptors, never loads the protobuf library', async () => {
    const modules = await modulesAfterPodStart('');
    expect(modules.some((m) => m.endsWith(path.join('dist', 'src', 'observability', 'pod-start-wire.js')))).toBe(true);
    expect(protobufjs(modules)).toEqual([]);
  });

  test('with an interceptor that decodes requests (audit), loads it', async () => {
    const modules = await modulesAfterPodStart(
      ['interceptors:', '  - name: audit', '    type: audit', '    config:', `      path: ${dir}/audit.log`].join('\n'),
    );
    expect(protobufjs(modules).length).toBeGreaterThan(0);
  });
});
