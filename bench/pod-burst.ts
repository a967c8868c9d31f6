/**
 * The pod-start burst: `BENCH_PODS` pods started at once through a row with kubelet's calls (RunPodSandbox,
 * PullImage of the image already present, CreateContainer, StartContainer), then removed again (StopContainer,
 * RemoveContainer, StopPodSandbox, RemovePodSandbox). What the chain costs where it matters most: a node starting
 * many pods after a drain or a rollout. Rows take turns per round, who goes first rotating, like the call phases.
 */
import type * as http2 from 'node:http2';
import { performance } from 'node:perf_hooks';
import { progress } from './log';
import { createContainerRequest, criCall, podName, responseString, sandboxConfig, type PodName, type PodTemplate } from './pods';
import type { Row } from './rows';
import { percentiles, round } from './stats';

/** One burst through one row. */
export interface BurstRecord {
  readonly round: number;
  readonly row: string;
  readonly pods: number;
  /** Pods whose four calls all succeeded. */
  readonly started: number;
  /** From the first RunPodSandbox sent to the last StartContainer answered. */
  readonly wallMs: number;
  /** Per pod, from its RunPodSandbox sent to its StartContainer answered (started pods only). */
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Removing them all again, at once. */
  readonly removeMs: number;
  /** What the first failed call said, if any failed. */
  readonly firstError: string | undefined;
}

export interface BurstSettings {
  readonly pods: number;
  readonly rounds: number;
  readonly callTimeoutMs: number;
}

interface StartedPod {
  readonly ms: number | undefined;
  readonly sandboxId: string | undefined;
  readonly containerId: string | undefined;
  readonly error: string | undefined;
}

async function startPod(session: http2.ClientHttp2Session, pod: PodName, template: PodTemplate, timeoutMs: number): Promise<StartedPod> {
  const sentAt = performance.now();
  const failed = (sandboxId: string | undefined, containerId: string | undefined, method: string, message: string): StartedPod => ({
    ms: undefined,
    sandboxId,
    containerId,
    error: `${method}: ${message}`,
  });
  const config = sandboxConfig(pod, template);
  const run = await criCall(session, 'RunPodSandbox', { config }, timeoutMs);
  const sandboxId = responseString(run, 'RunPodSandboxResponse', 'pod_sandbox_id');
  if (sandboxId === undefined) return failed(undefined, undefined, 'RunPodSandbox', run.message);
  const pull = await criCall(session, 'PullImage', { image: { image: template.image }, sandbox_config: config }, timeoutMs);
  if (pull.code !== 0) return failed(sandboxId, undefined, 'PullImage', pull.message);
  const created = await criCall(session, 'CreateContainer', createContainerRequest(pod, sandboxId, config, template), timeoutMs);
  const containerId = responseString(created, 'CreateContainerResponse', 'container_id');
  if (containerId === undefined) return failed(sandboxId, undefined, 'CreateContainer', created.message);
  const started = await criCall(session, 'StartContainer', { container_id: containerId }, timeoutMs);
  if (started.code !== 0) return failed(sandboxId, containerId, 'StartContainer', started.message);
  return { ms: performance.now() - sentAt, sandboxId, containerId, error: undefined };
}

async function removePod(session: http2.ClientHttp2Session, pod: StartedPod, timeoutMs: number): Promise<void> {
  if (pod.containerId !== undefined) {
    await criCall(session, 'StopContainer', { container_id: pod.containerId, timeout: 0 }, timeoutMs);
    await criCall(session, 'RemoveContainer', { container_id: pod.containerId }, timeoutMs);
  }
  if (pod.sandboxId !== undefined) {
    await criCall(session, 'StopPodSandbox', { pod_sandbox_id: pod.sandboxId }, timeoutMs);
    await criCall(session, 'RemovePodSandbox', { pod_sandbox_id: pod.sandboxId }, timeoutMs);
  }
}

/** One burst through `session`: pods numbered from `first` (names and UIDs unique over the run). */
async function burst(session: http2.ClientHttp2Session, template: PodTemplate, settings: BurstSettings, first: number) {
  const sentAt = performance.now();
  const pods = await Promise.all(
    Array.from({ length: settings.pods }, (_, i) => startPod(session, podName('burst', first + i), template, settings.callTimeoutMs)),
  );
  const wallMs = performance.now() - sentAt;
  const removing = performance.now();
  await Promise.all(pods.map((pod) => removePod(session, pod, settings.callTimeoutMs)));
  return { pods, wallMs, removeMs: performance.now() - removing };
}

/** `settings.rounds` rounds; within a round every row takes its turn, the first one rotating. */
export async function runBursts(rows: readonly Row[], template: PodTemplate, settings: BurstSettings): Promise<BurstRecord[]> {
  const records: BurstRecord[] = [];
  let first = 0;
  for (let r = 1; r <= settings.rounds; r++) {
    const order = rows.map((_, i) => rows[(i + r - 1) % rows.length] as Row);
    for (const row of order) {
      const session = row.session;
      if (session === undefined) throw new Error(`${row.name}: not connected`);
      const result = await burst(session, template, settings, first);
      first += settings.pods;
      const times = result.pods.flatMap((p) => (p.ms === undefined ? [] : [p.ms]));
      const [p50, p99] = percentiles(times, [50, 99]);
      const record: BurstRecord = {
        round: r,
        row: row.name,
        pods: settings.pods,
        started: times.length,
        wallMs: round(result.wallMs, 0),
        p50Ms: round(p50 ?? Number.NaN, 0),
        p99Ms: round(p99 ?? Number.NaN, 0),
        removeMs: round(result.removeMs, 0),
        firstError: result.pods.find((p) => p.error !== undefined)?.error,
      };
      records.push(record);
      const failed = record.pods - record.started;
      progress(
        `pod-start burst round ${r}/${settings.rounds} ${row.name}: ${settings.pods} pods in ${record.wallMs} ms, p50 ${record.p50Ms} ms p99 ${record.p99Ms} ms${failed > 0 ? `, ${failed} FAILED (${record.firstError ?? ''})` : ''}`,
      );
    }
  }
  return records;
}
