/**
 * A real pod start through cri-proxy yields one pod-start trace over OTLP/HTTP, one histogram count, and a pod
 * start that `cri-proxy pods` lists.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { PodStartsAnswer } from '../../src/observability/pod-starts-api';
import { createCriClient, stringField, type CriClient } from './harness/cri-client';
import { startEnvironment, type E2eEnvironment } from './harness/environment';
import { startOtlpReceiver, type OtlpReceiver, type OtlpSpan } from './harness/otlp-receiver';
import { freePort, waitUntil } from './harness/processes';
import { CRI_PROXY_CLI, startProxy, type RunningProxy } from './harness/proxy';

jest.setTimeout(180_000);

function attr(span: OtlpSpan, key: string): number | string | undefined {
  const value = span.attributes?.find((a) => a.key === key)?.value;
  if (!value) return undefined;
  const raw = value['intValue'] ?? value['doubleValue'] ?? value['stringValue'];
  return typeof raw === 'string' && /^\d+(\.\d+)?$/.test(raw) ? Number(raw) : (raw as number | string | undefined);
}

const ms = (nanos: string | number): number => Number(BigInt(nanos) / 1000n) / 1000;

let env: E2eEnvironment;
let receiver: OtlpReceiver;
let via: CriClient;
let metricsUrl: string;
let proxy: RunningProxy;

beforeAll(async () => {
  env = await startEnvironment();
  receiver = await startOtlpReceiver();
  const port = await freePort();
  metricsUrl = `http://127.0.0.1:${port}/metrics`;
  proxy = await startProxy(
    env,
    'cri-proxy',
    [
      'http:',
      `  listen: 127.0.0.1:${port}`,
      'podStarts: { settleMs: 1000 }',
      'interceptors:',
      '  - name: tracing',
      '    type: tracing',
      '    onError: failOpen',
      '    config:',
      `      exporter: { type: otlp-http, endpoint: "${receiver.url}" }`,
      '  - name: metrics',
      '    type: metrics',
      '    onError: failOpen',
    ].join('\n'),
  );
  via = createCriClient(proxy.socketPath);
});

afterAll(async () => {
  via?.close();
  await env?.stop();
  await receiver?.close();
});

test('starting a real pod yields a pod-start trace whose phases add up, and the histogram counts it once', async () => {
  const config = {
    metadata: { name: 'traced', namespace: 'e2e', uid: 'traced-uid', attempt: 0 },
    log_directory: join(env.podLogDir, 'traced'),
    linux: {},
  };
  const podId = stringField(await via.call('RunPodSandbox', { config }), 'pod_sandbox_id');
  await via.call('PullImage', { image: { image: env.busyboxImage }, sandbox_config: config });
  for (const name of ['first', 'second']) {
    const created = await via.call('CreateContainer', {
      pod_sandbox_id: podId,
      sandbox_config: config,
      config: { metadata: { name }, image: { image: env.busyboxImage }, command: ['sleep', '60'] },
    });
    await via.call('StartContainer', { container_id: stringField(created, 'container_id') });
  }

  await waitUntil('the pod-start trace to be exported', () => Promise.resolve(receiver.spans.some((s) => s.name === 'pod start')), {
    timeoutMs: 30_000,
  });
  const pods = receiver.spans.filter((s) => s.name === 'pod start');
  expect(pods).toHaveLength(1);
  const pod = pods[0] as OtlpSpan;
  expect(attr(pod, 'cri.pod.uid')).toBe('traced-uid');
  const phases = receiver.spans.filter((s) => s.parentSpanId === pod.spanId && s.traceId === pod.traceId);
  expect(phases.map((p) => attr(p, 'cri.pod_start.phase')).sort()).toEqual(['create', 'create', 'pull', 'sandbox', 'start', 'start']);

  const podStart = ms(pod.startTimeUnixNano);
  const podEnd = ms(pod.endTimeUnixNano);
  for (const phase of phases) {
    expect(ms(phase.startTimeUnixNano)).toBeGreaterThanOrEqual(podStart - 0.001);
    expect(ms(phase.endTimeUnixNano)).toBeLessThanOrEqual(podEnd + 0.001);
    expect(attr(phase, 'cri.pod_start.phase_ms')).toBeCloseTo(ms(phase.endTimeUnixNano) - ms(phase.startTimeUnixNano), 0);
  }
  // The phases run one after another inside the pod's start: their sum fits in the total.
  const total = attr(pod, 'cri.pod_start.total_ms') as number;
  expect(total).toBeCloseTo(podEnd - podStart, 0);
  const phaseSum = ['sandbox', 'pull', 'create', 'start'].reduce((sum, p) => sum + (attr(pod, `cri.pod_start.${p}_ms`) as number), 0);
  expect(phaseSum).toBeLessThanOrEqual(total + 1);
  expect(phaseSum).toBeGreaterThan(total * 0.5);

  const metrics = await (await fetch(metricsUrl)).text();
  expect(metrics).toMatch(/^cri_proxy_pod_start_duration_seconds_count\{[^}]*\} 1$/m);
  // Per pod, one observation per phase kind: the time of both creates, summed.
  expect(metrics).toMatch(/^cri_proxy_pod_start_phase_duration_seconds_count\{[^}]*phase="create"[^}]*\} 1$/m);

  await via.call('StopPodSandbox', { pod_sandbox_id: podId });
  await via.call('RemovePodSandbox', { pod_sandbox_id: podId });
});

test('after real pods start, `cri-proxy pods --json` lists them with their sandbox, create and start phases', async () => {
  const started: string[] = [];
  for (const name of ['listed-a', 'listed-b']) {
    const config = {
      metadata: { name, namespace: 'e2e-pods', uid: `${name}-uid`, attempt: 0 },
      log_directory: join(env.podLogDir, name),
      linux: {},
    };
    const podId = stringField(await via.call('RunPodSandbox', { config }), 'pod_sandbox_id');
    const created = await via.call('CreateContainer', {
      pod_sandbox_id: podId,
      sandbox_config: config,
      config: { metadata: { name: 'main' }, image: { image: env.busyboxImage }, command: ['sleep', '60'] },
    });
    await via.call('StartContainer', { container_id: stringField(created, 'container_id') });
    started.push(podId);
  }
  const run = promisify(execFile);
  let answer: PodStartsAnswer | undefined;
  await waitUntil(
    'cri-proxy pods to list both pod starts',
    async () => {
      const { stdout } = await run(process.execPath, [
        CRI_PROXY_CLI,
        'pods',
        '--json',
        '--namespace',
        'e2e-pods',
        '--config',
        proxy.configPath,
      ]);
      answer = JSON.parse(stdout) as PodStartsAnswer;
      return answer.podStarts.length === 2;
    },
    { timeoutMs: 30_000 },
  );
  expect(answer?.podStarts.map((s) => s.name)).toEqual(['listed-b', 'listed-a']);
  for (const start of answer?.podStarts ?? []) {
    expect(start).toMatchObject({ status: 'ok', backend: 'containerd', containers: 1 });
    expect(start.traceId).toMatch(/^[0-9a-f]{32}$/);
    for (const phase of ['sandbox', 'create', 'start'] as const) {
      const found = start.phases.find((p) => p.phase === phase);
      expect([phase, found?.code, (found?.durationMs ?? 0) > 0]).toEqual([phase, 'OK', true]);
    }
    expect(start.phases.find((p) => p.phase === 'create')).toMatchObject({
      container: 'main',
      image: env.busyboxImage,
      imagePresent: true,
    });
  }
  // The table too: a row per pod with its waterfall.
  const { stdout: table } = await run(process.execPath, [CRI_PROXY_CLI, 'pods', '--namespace', 'e2e-pods', '--config', proxy.configPath]);
  expect(table).toMatch(/^e2e-pods +listed-b +\S+ m?s /m);
  for (const podId of started) {
    await via.call('StopPodSandbox', { pod_sandbox_id: podId });
    await via.call('RemovePodSandbox', { pod_sandbox_id: podId });
  }
});
