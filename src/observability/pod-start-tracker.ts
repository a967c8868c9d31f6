import { LRUCache } from 'lru-cache';
import type { CallContext, MethodInfo } from '../chain/types';
import { GrpcStatus } from '../errors';
import { realScheduler, type ScheduledTask, type Scheduler } from '../scheduler';
import type { Instant } from '../chain/pod-start-records';
import { elapsedMs } from './clock';
import type {
  ObservedCall,
  PodDropReason,
  PodStart,
  PodStartPhase,
  PodStartPhaseName,
  PodStartStats,
  PodStartTrackerOptions,
} from './pod-start-types';
import { podStartPhases } from './pod-start-phases';
import { prepareCall, settledCall } from './pod-start-call';

export * from './pod-start-types';

/*
 * Follows each pod from RunPodSandbox to the start of its last container using the CRI calls alone, and reports
 * one record per pod start. Independent of any telemetry library: tracing turns records into spans, metrics into
 * histograms.
 */

interface PodRecord extends Pick<PodStart, 'uid' | 'name' | 'namespace' | 'runtimeHandler' | 'backend' | 'start'> {
  sandboxId: string | undefined;
  readonly phases: PodStartPhase[];
  phasesDropped: number;
  /** container id → name */
  readonly containers: Map<string, string | undefined>;
  started: number;
  lastStart: PodStartPhase | undefined;
  settle: ScheduledTask | undefined;
  /** Reported already; a late disposal must not count it as dropped. */
  done: boolean;
}

export class PodStartTracker {
  private readonly pods: LRUCache<string, PodRecord>;
  private readonly bySandbox = new Map<string, PodRecord>();
  private readonly byContainer = new Map<string, PodRecord>();
  private readonly settleMs: number;
  private readonly maxPhases: number;
  private purgeTimer: ScheduledTask | undefined;
  private readonly counts = { completed: 0, failed: 0, dropped: 0 };
  private readonly scheduler: Scheduler;
  private closed = false;

  constructor(private readonly options: PodStartTrackerOptions) {
    this.settleMs = options.settleMs ?? 3000;
    this.maxPhases = options.maxPhases ?? 128;
    const scheduler = (this.scheduler = options.scheduler ?? realScheduler);
    const ttlMs = options.ttlMs ?? 10 * 60 * 1000;
    this.pods = new LRUCache<string, PodRecord>({
      max: options.maxPods ?? 1000,
      ttl: ttlMs,
      // The tracker's clock, read fresh each time (no cached reading that a test's clock would outrun).
      perf: { now: () => scheduler.now() },
      ttlResolution: 0,
      // Age counts from the pod's last phase, so a slow but progressing start is not dropped.
      updateAgeOnGet: true,
      dispose: (record, _uid, reason) => {
        this.forget(record);
        if (!record.done && (reason === 'evict' || reason === 'expire')) this.drop(record, reason === 'evict' ? 'evicted' : 'expired');
      },
    });
    // Expiry is lazy in lru-cache; the sweep reports abandoned pods without waiting for a lookup.
    const sweepMs = Math.min(Math.max(ttlMs, 1000), 60_000);
    const sweep = (): void => {
      this.pods.purgeStale();
      if (!this.closed) this.purgeTimer = scheduler.after(sweepMs, sweep);
    };
    this.purgeTimer = scheduler.after(sweepMs, sweep);
  }

  /** True for the calls a pod start consists of; every other call can skip the tracker entirely. */
  static tracks(method: MethodInfo): boolean {
    return podStartPhases.of(method) !== undefined;
  }

  /**
   * Call before the call goes on, for tracked methods: reads the request while it can still be read (once
   * forwarded unread, it is gone), and the caller's trace context before forwarding can replace it. `read`
   * reads the request's message bytes (by default as an interceptor does). Never rejects.
   */
  async prepare(ctx: CallContext, read: () => Promise<Buffer | undefined> = () => ctx.requestBytes()): Promise<void> {
    if (PodStartTracker.tracks(ctx.method)) await prepareCall(ctx, read);
  }

  /** Call after the call settled (resolved or rejected). Returns the phase it recorded, if any. Never throws. */
  observe(ctx: CallContext, call: ObservedCall = {}): PodStartPhase | undefined {
    const kind = podStartPhases.of(ctx.method);
    if (this.closed || kind === undefined) return undefined;
    const settled = settledCall(ctx, call);
    if (settled === undefined) return undefined;
    const { req, res, phase } = settled;
    try {
      switch (kind) {
        case 'sandbox': {
          const uid = req('podUid');
          if (uid === undefined) return undefined;
          const sandbox = phase('sandbox', undefined);
          const pod = {
            uid,
            name: req('podName'),
            namespace: req('podNamespace'),
            runtimeHandler: req('runtimeHandler'),
            backend: ctx.backend,
          };
          this.begin(pod, sandbox, res('sandboxId'));
          return sandbox;
        }
        case 'pull': {
          const record = this.lookup(undefined, req('podUid'));
          const image = req('image');
          return record ? this.addPhase(record, phase('pull', image, image)) : undefined;
        }
        case 'create': {
          const sandboxId = req('sandboxId');
          const record = this.lookup(this.bySandbox.get(sandboxId ?? ''), req('podUid'));
          // A container of an older sandbox of the same pod is not part of this start.
          if (!record || (record.sandboxId !== undefined && sandboxId !== undefined && record.sandboxId !== sandboxId)) return undefined;
          if (record.sandboxId === undefined && sandboxId !== undefined) this.bySandbox.set((record.sandboxId = sandboxId), record);
          const name = req('containerName');
          const created = this.addPhase(record, phase('create', name, settled.containerImage()));
          const id = res('containerId');
          if (id !== undefined && record.containers.size < this.maxPhases) {
            record.containers.set(id, name);
            this.byContainer.set(id, record);
          }
          return created;
        }
        case 'start': {
          const id = req('containerId') ?? '';
          const record = this.lookup(this.byContainer.get(id), undefined);
          if (!record) return undefined;
          const started = phase('start', record.containers.get(id) ?? id);
          this.addPhase(record, started);
          record.started++;
          record.lastStart = started;
          // The proxy cannot know how many containers a pod has: the start is over once no phase follows for a while.
          record.settle = this.scheduler.after(this.settleMs, () => this.complete(record));
          return started;
        }
        default:
          return undefined;
      }
    } catch {
      // Observation must never affect the call; a malformed response simply goes untracked.
      return undefined;
    }
  }

  /** Reports every pod whose containers have started now, without waiting for the quiet period. */
  flush(): void {
    for (const record of [...this.pods.values()]) if (record.lastStart) this.complete(record);
  }

  get stats(): PodStartStats {
    return { active: this.pods.size, ...this.counts };
  }

  /** Reports pods already started (their end is known), forgets the rest, stops all timers. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.purgeTimer?.cancel();
    this.pods.clear();
  }

  private begin(
    pod: Pick<PodStart, 'uid' | 'name' | 'namespace' | 'runtimeHandler' | 'backend'>,
    sandbox: PodStartPhase,
    sandboxId: string | undefined,
  ): void {
    const uid = pod.uid;
    const previous = this.pods.peek(uid);
    if (previous) {
      // A new sandbox for the same pod (the old one died or failed): the old start is over either way.
      if (previous.lastStart) this.complete(previous);
      else {
        this.pods.delete(uid);
        this.drop(previous, 'replaced');
      }
    }
    const record: PodRecord = {
      ...pod,
      sandboxId,
      start: sandbox.start,
      phases: [sandbox],
      phasesDropped: 0,
      containers: new Map(),
      started: 0,
      lastStart: undefined,
      settle: undefined,
      done: false,
    };
    if (sandbox.code !== GrpcStatus.OK) {
      this.emit(record, sandbox.end, 'failed', sandbox.code);
      return;
    }
    this.pods.set(uid, record);
    if (sandboxId !== undefined) this.bySandbox.set(sandboxId, record);
  }

  /** The live record for a pod, found by sandbox/container index or uid; refreshes its age. */
  private lookup(indexed: PodRecord | undefined, uid: string | undefined): PodRecord | undefined {
    const key = indexed?.uid ?? uid;
    if (key === undefined) return undefined;
    const record = this.pods.get(key);
    return indexed === undefined || record === indexed ? record : undefined;
  }

  /** The phase, or undefined when the pod had too many to keep it. */
  private addPhase(record: PodRecord, phase: PodStartPhase): PodStartPhase | undefined {
    if (record.settle) {
      record.settle.cancel();
      record.settle = undefined;
    }
    if (record.phases.length < this.maxPhases) {
      record.phases.push(phase);
      return phase;
    }
    record.phasesDropped++;
    return undefined;
  }

  private complete(record: PodRecord): void {
    const last = record.lastStart;
    if (record.done) return;
    if (this.pods.peek(record.uid) === record) this.pods.delete(record.uid);
    else this.forget(record);
    if (!last) return;
    this.emit(record, last.end, last.code === GrpcStatus.OK ? 'ok' : 'failed', last.code);
  }

  private emit(record: PodRecord, end: Instant, status: 'ok' | 'failed', code: number): void {
    record.done = true;
    const phaseTotals: Record<PodStartPhaseName, number> = { sandbox: 0, pull: 0, create: 0, start: 0 };
    for (const p of record.phases) phaseTotals[p.phase] += p.durationMs;
    if (status === 'ok') this.counts.completed++;
    else this.counts.failed++;
    const { uid, name, namespace, sandboxId, runtimeHandler, backend, start, phases, phasesDropped, started: containers } = record;
    const totalMs = elapsedMs(start, end);
    try {
      const podStart = { uid, name, namespace, sandboxId, runtimeHandler, backend, start, end, totalMs, status, code };
      this.options.onComplete({ ...podStart, phases, phasesDropped, phaseTotals, containers });
    } catch {
      // A consumer's fault must not break tracking of other pods; consumers guard and report their own errors.
    }
  }

  private forget(record: PodRecord): void {
    record.settle?.cancel();
    record.settle = undefined;
    if (record.sandboxId !== undefined && this.bySandbox.get(record.sandboxId) === record) this.bySandbox.delete(record.sandboxId);
    for (const id of record.containers.keys()) if (this.byContainer.get(id) === record) this.byContainer.delete(id);
  }

  private drop(record: PodRecord, reason: PodDropReason): void {
    this.counts.dropped++;
    try {
      this.options.onDrop?.(reason, record.uid);
    } catch {
      // As for onComplete.
    }
  }
}
