/**
 * The soak: a kubelet-like load (soak-load.ts) through the built proxy with the config/node.yaml chain, for
 * SOAK_SECONDS, the proxy's memory sampled as it goes. In front of the stateful fake runtime
 * (soak-runtime-process.ts), or of a real private containerd with real pods (SOAK_CONTAINERD=1, root). Reports a
 * table on stdout and bench/results/soak-latest.json. A tool, not a test: nothing is asserted.
 * Settings: SOAK_* environment variables, see bench/README.md.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startEnvironment, type E2eEnvironment } from '../test/e2e/harness/environment';
import { freePort } from '../test/e2e/harness/processes';
import { connect } from './load';
import { progress } from './log';
import { cliPath, resultsDir } from './paths';
import { cpuMicros, memoryOf, settledRssKb, startFakeRuntime, startProxy, waitUntilListening, type Child } from './processes';
import { allowImages, PROXY_VARIANTS, writeProxyConfig } from './proxy-config';
import { containerdUnavailable } from './runtimes';
import type { PodTemplate } from './pods';
import { KubeletLoad } from './soak-load';
import { formatSoakReport, type SoakResult, type SoakSample } from './soak-report';
import { soakSettingsFromEnv, type SoakSettings } from './soak-settings';
import { round } from './stats';
import { ALLOWED_IMAGE } from './workloads';

interface Target {
  readonly name: string;
  readonly description: string;
  readonly socketPath: string;
  readonly template: PodTemplate;
  /** Rules the soak's copy of the image policy gets on top (the private registry's images, say). */
  readonly allowImages: readonly string[];
  stop(): Promise<void>;
}

async function fakeTarget(dir: string): Promise<Target> {
  const socketPath = path.join(dir, 'runtime.sock');
  const { child } = await startFakeRuntime(socketPath, 'soak-runtime-process.js');
  return {
    name: 'fake-runtime',
    description: 'bench/soak-runtime-process.ts: the fake runtime keeping pods and containers (no processes)',
    socketPath,
    template: { image: ALLOWED_IMAGE, command: ['/pause'], logDir: path.join(dir, 'pods') },
    allowImages: [],
    stop: () => child.stop(3000),
  };
}

async function containerdTarget(): Promise<Target> {
  const why = containerdUnavailable();
  if (why !== undefined) throw new Error(`SOAK_CONTAINERD=1, but a private containerd cannot run: ${why}`);
  progress('starting a private containerd, its registry and images (the e2e environment)');
  const env: E2eEnvironment = await startEnvironment();
  return {
    name: 'containerd',
    description: `private containerd (${env.snapshotter}, runc, CNI bridge), real pods running busybox`,
    socketPath: env.containerdSocket,
    template: { image: env.busyboxImage, command: ['sleep', '86400'], logDir: env.podLogDir },
    allowImages: [`${env.registryHost}/**`],
    stop: () => env.stop(),
  };
}

function sample(proxy: Child, load: KubeletLoad, startedAt: number, last: { at: number; cpuUs: number }): SoakSample {
  const at = Date.now();
  const cpuUs = cpuMicros(proxy.pid);
  const m = memoryOf(proxy.pid);
  const { calls, errors } = load.totals;
  const cpuPct = at > last.at ? round(((cpuUs - last.cpuUs) / 1000 / (at - last.at)) * 100, 1) : Number.NaN;
  last.at = at;
  last.cpuUs = cpuUs;
  return {
    seconds: round((at - startedAt) / 1000, 0),
    rssMb: round(m.rssKb / 1024, 1),
    hwmMb: round(m.hwmKb / 1024, 1),
    cpuPct,
    calls,
    errors,
    pods: load.podCount,
  };
}

function verifyAudit(auditDir: string): Promise<string> {
  const files = fs.existsSync(auditDir) ? fs.readdirSync(auditDir).map((f) => path.join(auditDir, f)) : [];
  if (files.length === 0) return Promise.resolve('no audit log written');
  return new Promise((resolve) => {
    execFile(process.execPath, [cliPath(), 'audit', 'verify', ...files], { encoding: 'utf8' }, (err, stdout, stderr) => {
      const text = `${stdout}${stderr}`.trim().split('\n')[0] ?? '';
      resolve(err ? `FAILED (${err.message.split('\n')[0] ?? ''}): ${text}` : text);
    });
  });
}

async function soak(
  settings: SoakSettings,
  dir: string,
  stopRequested: () => boolean,
  onTeardown: (fn: () => Promise<void>) => void,
): Promise<SoakResult> {
  const target = settings.containerd ? await containerdTarget() : await fakeTarget(dir);
  onTeardown(() => target.stop());
  const proxyDir = path.join(dir, 'proxy');
  const listen = path.join(proxyDir, 'cri-proxy.sock');
  const variant = PROXY_VARIANTS.find((v) => v.chain) ?? { name: 'proxy+chain', chain: true };
  const configFile = writeProxyConfig(variant, {
    dir: proxyDir,
    listen,
    upstream: target.socketPath,
    tracingExporter: settings.tracingExporter,
    closedPort: await freePort(),
  });
  allowImages(proxyDir, target.allowImages);
  const proxy = startProxy({ name: 'cri-proxy', configFile, listen, upstream: target.socketPath, nodeArgs: [] });
  onTeardown(() => proxy.stop(5000));
  await waitUntilListening(proxy, listen, 30_000);
  const idle = await settledRssKb(proxy, 5000);
  progress(`proxy listening, idle VmRSS ${round(idle.rssKb / 1024, 1)} MB; starting ${settings.load.pods} pods`);
  const session = await connect(listen);
  onTeardown(() => {
    session.destroy();
    return Promise.resolve();
  });
  const load = new KubeletLoad(session, target.template, settings.load);
  await proxy.unlessItDies(load.fillUp());
  progress(`${load.podCount} pods running; load for ${settings.seconds} s`);
  const startedAt = Date.now();
  const last = { at: startedAt, cpuUs: cpuMicros(proxy.pid) };
  const samples: SoakSample[] = [sample(proxy, load, startedAt, last)];
  load.start();
  const endAt = startedAt + settings.seconds * 1000;
  while (Date.now() < endAt && !stopRequested()) {
    await proxy.unlessItDies(sleep(Math.min(settings.sampleMs, Math.max(0, endAt - Date.now()))));
    if (!proxy.running) break;
    const s = sample(proxy, load, startedAt, last);
    samples.push(s);
    progress(
      `${s.seconds} s: VmRSS ${s.rssMb} MB, VmHWM ${s.hwmMb} MB, CPU ${s.cpuPct}%, ${s.calls} calls, ${s.errors} errors, ${s.pods} pods`,
    );
  }
  await load.stop();
  progress('load stopped; removing the pods');
  await load.removeAll();
  const audit = await verifyAudit(path.join(proxyDir, 'audit'));
  return {
    schema: 1,
    at: new Date(startedAt).toISOString(),
    node: process.version,
    cpus: os.cpus().length,
    runtime: { name: target.name, description: target.description },
    settings: { seconds: settings.seconds, ...settings.load, sampleMs: settings.sampleMs, tracingExporter: settings.tracingExporter },
    idleRssMb: round(idle.rssKb / 1024, 1),
    samples,
    methods: Object.fromEntries([...load.counts].map(([m, c]) => [m, { calls: c.calls, errors: c.errors, maxMs: round(c.maxMs, 1) }])),
    lastErrors: Object.fromEntries(load.lastErrors),
    skippedTicks: { ...load.skipped },
    audit,
  };
}

async function main(): Promise<number> {
  const settings = soakSettingsFromEnv();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cri-soak-'));
  const teardowns: (() => Promise<void>)[] = [];
  let stop = false;
  const interrupted = (signal: NodeJS.Signals): void => {
    progress(`${signal}: ending the soak early`);
    stop = true;
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    const result = await soak(
      settings,
      dir,
      () => stop,
      (fn) => teardowns.push(fn),
    );
    process.stdout.write(`${formatSoakReport(result)}\n`);
    fs.mkdirSync(resultsDir(), { recursive: true });
    fs.writeFileSync(path.join(resultsDir(), 'soak-latest.json'), `${JSON.stringify(result, null, 2)}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`soak failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 1;
  } finally {
    for (const teardown of teardowns.reverse()) await teardown().catch((err: unknown) => progress(`teardown: ${String(err)}`));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void main().then((code) => process.exit(code));
