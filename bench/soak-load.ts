/**
 * A kubelet-like load on one HTTP/2 connection, as kubelet holds one to its runtime: the pod lifecycle relisted
 * every second, each pod's sandbox and container status polled in turn, node and pod stats on an interval, and a
 * pod started and another removed every few seconds. It acts on what the runtime answers (ids), so it runs the
 * same against the stateful fake runtime and against a real containerd.
 */
import type * as http2 from 'node:http2';
import { performance } from 'node:perf_hooks';
import { decode } from './cri-messages';
import { createContainerRequest, criCall, podName, sandboxConfig, type PodTemplate } from './pods';

export interface SoakLoadSettings {
  readonly pods: number;
  readonly relistMs: number;
  /** Every pod's status is polled once per this period, spread evenly over it. */
  readonly statusMs: number;
  readonly statsMs: number;
  readonly churnMs: number;
  readonly callTimeoutMs: number;
}

export interface MethodCount {
  calls: number;
  errors: number;
  maxMs: number;
}

interface Pod {
  readonly id: string;
  containerId: string | undefined;
}

/** Ticks that found the previous round of the same task still running (the load could not keep its pace). */
export type SkippedTicks = Record<'relist' | 'status' | 'stats' | 'churn', number>;

export class KubeletLoad {
  readonly counts = new Map<string, MethodCount>();
  readonly skipped: SkippedTicks = { relist: 0, status: 0, stats: 0, churn: 0 };
  /** The last error message per method, so a report can say what failed. */
  readonly lastErrors = new Map<string, string>();
  private readonly pods: Pod[] = [];
  private made = 0;
  private statusCursor = 0;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly running = new Set<Promise<void>>();

  constructor(
    private readonly session: http2.ClientHttp2Session,
    private readonly template: PodTemplate,
    private readonly settings: SoakLoadSettings,
  ) {}

  get podCount(): number {
    return this.pods.length;
  }

  get totals(): { calls: number; errors: number } {
    let calls = 0;
    let errors = 0;
    for (const c of this.counts.values()) {
      calls += c.calls;
      errors += c.errors;
    }
    return { calls, errors };
  }

  /** Pulls the image and starts `settings.pods` pods, a few at a time. */
  async fillUp(concurrency = 4): Promise<void> {
    await this.call('PullImage', { image: { image: this.template.image } });
    let next = 0;
    const workers = Array.from({ length: concurrency }, async () => {
      while (next++ < this.settings.pods) await this.startPod();
    });
    await Promise.all(workers);
  }

  start(): void {
    this.every(this.settings.relistMs, 'relist', () => this.relist());
    // Status polls a slice of the pods per second, so every pod comes round once per statusMs.
    this.every(1000, 'status', () => this.pollStatus());
    this.every(this.settings.statsMs, 'stats', () => this.stats());
    this.every(this.settings.churnMs, 'churn', () => this.churn());
  }

  /** Stops the timers and waits for the rounds in flight. */
  async stop(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    await Promise.all([...this.running]);
  }

  /** Stops and removes every pod the load started. */
  async removeAll(): Promise<void> {
    while (this.pods.length > 0) await this.removePod(this.pods.shift() as Pod);
  }

  private every(ms: number, task: keyof SkippedTicks, work: () => Promise<void>): void {
    let busy = false;
    this.timers.push(
      setInterval(() => {
        if (busy) {
          this.skipped[task] += 1;
          return;
        }
        busy = true;
        const round = work().finally(() => {
          busy = false;
          this.running.delete(round);
        });
        this.running.add(round);
      }, ms),
    );
  }

  private async relist(): Promise<void> {
    await Promise.all([this.call('ListPodSandbox', {}), this.call('ListContainers', { filter: {} })]);
  }

  private async pollStatus(): Promise<void> {
    const perSecond = Math.ceil((this.pods.length * 1000) / this.settings.statusMs);
    const polled: Promise<unknown>[] = [];
    for (let i = 0; i < perSecond && this.pods.length > 0; i++) {
      const pod = this.pods[this.statusCursor++ % this.pods.length] as Pod;
      polled.push(this.call('PodSandboxStatus', { pod_sandbox_id: pod.id }));
      if (pod.containerId !== undefined) polled.push(this.call('ContainerStatus', { container_id: pod.containerId }));
    }
    await Promise.all(polled);
  }

  private async stats(): Promise<void> {
    await Promise.all([
      this.call('Status', {}),
      this.call('ImageFsInfo', {}),
      this.call('ListPodSandboxStats', { filter: {} }),
      this.call('ListContainerStats', { filter: {} }),
    ]);
  }

  private async churn(): Promise<void> {
    const oldest = this.pods.shift();
    await Promise.all([this.startPod(), oldest === undefined ? undefined : this.removePod(oldest)]);
  }

  private async startPod(): Promise<void> {
    const name = podName('soak', this.made++);
    const config = sandboxConfig(name, this.template);
    const sandbox = await this.run('RunPodSandbox', { config });
    const id = sandbox === undefined ? undefined : stringOf(decode('RunPodSandboxResponse', sandbox).pod_sandbox_id);
    if (id === undefined) return;
    const pod: Pod = { id, containerId: undefined };
    this.pods.push(pod);
    await this.call('ImageStatus', { image: { image: this.template.image } });
    const created = await this.run('CreateContainer', createContainerRequest(name, id, config, this.template));
    const containerId = created === undefined ? undefined : stringOf(decode('CreateContainerResponse', created).container_id);
    if (containerId === undefined) return;
    pod.containerId = containerId;
    await this.call('StartContainer', { container_id: containerId });
    await this.call('PodSandboxStatus', { pod_sandbox_id: id });
    await this.call('ContainerStatus', { container_id: containerId });
  }

  private async removePod(pod: Pod): Promise<void> {
    if (pod.containerId !== undefined) {
      await this.call('StopContainer', { container_id: pod.containerId, timeout: 1 });
      await this.call('RemoveContainer', { container_id: pod.containerId });
    }
    await this.call('StopPodSandbox', { pod_sandbox_id: pod.id });
    await this.call('RemovePodSandbox', { pod_sandbox_id: pod.id });
  }

  private async call(method: string, fields: Record<string, unknown>): Promise<void> {
    await this.run(method, fields);
  }

  /** One call, counted; the response message when it succeeded. */
  private async run(method: string, fields: Record<string, unknown>): Promise<Buffer | undefined> {
    const sentAt = performance.now();
    const answer = await criCall(this.session, method, fields, this.settings.callTimeoutMs);
    const ms = performance.now() - sentAt;
    let count = this.counts.get(method);
    if (count === undefined) this.counts.set(method, (count = { calls: 0, errors: 0, maxMs: 0 }));
    count.calls += 1;
    count.maxMs = Math.max(count.maxMs, ms);
    if (answer.code === 0) return answer.body;
    count.errors += 1;
    this.lastErrors.set(method, `${answer.code}: ${answer.message}`);
    return undefined;
  }
}

function stringOf(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}
