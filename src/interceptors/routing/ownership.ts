/**
 * Which backend owns each sandbox and container (and which runs each pod, for its image pulls). Learned from
 * the answers that create them, rebuilt at start-up from every backend's lists, found on a miss by asking every
 * backend, forgotten on removal. Bounded: an evicted entry is simply found again when next needed.
 */
import { LRUCache } from 'lru-cache';
import { GrpcStatus } from '../../errors';
import type { Logger } from '../../log';
import { decodeMessage, encodeMessage, type DecodedMessage } from '../../messages/codec';
import { stringAt, wireFields } from '../../messages/protobuf-wire';
import type { CallBackend, NamedReply } from './backend-call';
import { callEvery, failuresOf, statusName, type BuiltAnswer } from './fan-out';
import type { OwnershipEffect } from './method-routes';
import type { OwnedKind, RoutingMetrics } from './metrics';
import { resolvePath } from '../../messages/wire-paths';
import { fieldAt } from '../../messages/field-at';

const SERVICE = '/runtime.v1.RuntimeService';
const EVENT = 'runtime.v1.ContainerEventResponse';

/** What a lookup settled on. */
export type Owner =
  | { readonly kind: 'owned'; readonly backend: string }
  /** No backend knows the ID: the default backend gives its answer. */
  | { readonly kind: 'unknown'; readonly backend: string }
  /** Some backend could not be asked: routing anywhere could hide the object, so the call fails with `answer`. */
  | { readonly kind: 'unavailable'; readonly answer: BuiltAnswer };

export interface OwnershipOptions {
  /** Backend order, the default first. */
  readonly backends: readonly string[];
  readonly defaultBackend: string;
  readonly call: CallBackend;
  /** Entries per kind. */
  readonly cacheSize: number;
  readonly lookupTimeoutMs: number;
  readonly rebuildTimeoutMs: number;
  readonly metrics: RoutingMetrics;
  readonly log: Logger;
  /** Milliseconds since the epoch (deadlines are absolute). */
  readonly now?: () => number;
}

export interface RebuildReport {
  readonly backend: string;
  readonly ok: boolean;
  readonly sandboxes: number;
  readonly containers: number;
  /** Why it failed, when it did. */
  readonly error?: string;
}

interface ContainerEntry {
  readonly backend: string;
  readonly sandboxId: string | undefined;
}

type LookupKind = 'sandbox' | 'container';

const lookups = {
  sandbox: { path: `${SERVICE}/PodSandboxStatus`, request: 'runtime.v1.PodSandboxStatusRequest', field: 'pod_sandbox_id' },
  container: { path: `${SERVICE}/ContainerStatus`, request: 'runtime.v1.ContainerStatusRequest', field: 'container_id' },
} as const;

/** Items of a list response's repeated field (number 1 in ListPodSandbox and ListContainers), each as its bytes. */
function listItems(body: Buffer | undefined): Buffer[] {
  if (body === undefined) return [];
  return wireFields(body)
    .filter((f) => f.number === 1 && f.wireType === 2)
    .map((f) => body.subarray(f.valueStart, f.end));
}

/** Strings at a dotted path that may cross repeated fields (`restored_containers.container_id`). */
function stringsAt(message: unknown, path: readonly string[]): string[] {
  if (Array.isArray(message)) return message.flatMap((m) => stringsAt(m, path));
  const [head, ...rest] = path;
  if (head === undefined) return typeof message === 'string' && message !== '' ? [message] : [];
  if (typeof message !== 'object' || message === null || !Object.hasOwn(message, head)) return [];
  return stringsAt((message as Record<string, unknown>)[head], rest);
}

export class OwnershipCache {
  private readonly sandboxes: LRUCache<string, string>;
  private readonly containers: LRUCache<string, ContainerEntry>;
  private readonly pods: LRUCache<string, string>;
  /** Cached containers by sandbox, so removing a sandbox forgets its containers too. */
  private readonly containersOf = new Map<string, Set<string>>();
  private readonly inflight = new Map<string, Promise<Owner>>();
  private rebuilding: Promise<unknown> = Promise.resolve();
  private readonly now: () => number;

  constructor(private readonly options: OwnershipOptions) {
    this.now = options.now ?? Date.now;
    const evicted = (kind: OwnedKind) => (reason: LRUCache.DisposeReason) => {
      if (reason === 'evict') options.metrics.evictions.inc({ kind });
    };
    const onSandbox = evicted('sandbox');
    const onContainer = evicted('container');
    const onPod = evicted('pod');
    this.sandboxes = new LRUCache({ max: options.cacheSize, dispose: (_v, _k, reason) => onSandbox(reason) });
    this.pods = new LRUCache({ max: options.cacheSize, dispose: (_v, _k, reason) => onPod(reason) });
    this.containers = new LRUCache({
      max: options.cacheSize,
      dispose: (entry, id, reason) => {
        onContainer(reason);
        if (entry.sandboxId === undefined) return;
        const set = this.containersOf.get(entry.sandboxId);
        set?.delete(id);
        if (set?.size === 0) this.containersOf.delete(entry.sandboxId);
      },
    });
  }

  /** Entries held per kind. */
  get size(): Readonly<Record<OwnedKind, number>> {
    return { sandbox: this.sandboxes.size, container: this.containers.size, pod: this.pods.size };
  }

  learnSandbox(id: string, backend: string, podUid?: string): void {
    if (id === '') return;
    this.sandboxes.set(id, backend);
    if (podUid !== undefined && podUid !== '') this.pods.set(podUid, backend);
    this.updateGauges();
  }

  learnContainer(id: string, backend: string, sandboxId?: string): void {
    if (id === '') return;
    const sandbox = sandboxId === '' ? undefined : sandboxId;
    this.containers.set(id, { backend, sandboxId: sandbox });
    if (sandbox !== undefined) {
      let set = this.containersOf.get(sandbox);
      if (set === undefined) this.containersOf.set(sandbox, (set = new Set()));
      set.add(id);
    }
    this.updateGauges();
  }

  forgetSandbox(id: string): void {
    this.sandboxes.delete(id);
    for (const container of [...(this.containersOf.get(id) ?? [])]) this.containers.delete(container);
    this.containersOf.delete(id);
    this.updateGauges();
  }

  forgetContainer(id: string): void {
    this.containers.delete(id);
    this.updateGauges();
  }

  /** What a successful call on `backend` taught (see OwnershipEffect). */
  apply(effect: OwnershipEffect, backend: string, request: DecodedMessage | undefined, response: DecodedMessage | undefined): void {
    const at = (message: DecodedMessage | undefined, path: string | undefined): string | undefined =>
      path === undefined ? undefined : fieldAt(message, path);
    const sandboxId = at(response, effect.sandboxId);
    if (sandboxId !== undefined) this.learnSandbox(sandboxId, backend, at(request, effect.podUid));
    const containerId = at(response, effect.containerId);
    if (containerId !== undefined) this.learnContainer(containerId, backend, at(request, effect.sandboxOfContainer));
    if (effect.containerIds !== undefined) {
      for (const id of stringsAt(response, effect.containerIds.split('.'))) this.learnContainer(id, backend, sandboxId);
    }
    const gone = at(request, effect.forgetSandbox);
    if (gone !== undefined) this.forgetSandbox(gone);
    const removed = at(request, effect.forgetContainer);
    if (removed !== undefined) this.forgetContainer(removed);
  }

  /**
   * A GetContainerEvents message from `backend`: what it names is that backend's (objects created around the
   * proxy, by crictl on the runtime's own socket say, are learned too); a deleted container is forgotten.
   */
  learnFromEvent(backend: string, message: Buffer): void {
    const event = decodeMessage(EVENT, message);
    const containerId = fieldAt(event, 'container_id') ?? '';
    if (event['container_event_type'] === 'CONTAINER_DELETED_EVENT') {
      if (containerId !== '') this.forgetContainer(containerId);
      return;
    }
    const sandboxId = fieldAt(event, 'pod_sandbox_status.id');
    if (sandboxId !== undefined) this.learnSandbox(sandboxId, backend, fieldAt(event, 'pod_sandbox_status.metadata.uid'));
    // The runtime reports its sandboxes' own events under the sandbox's ID: that is no container.
    if (containerId !== sandboxId) this.learnContainer(containerId, backend, sandboxId);
  }

  /** The backend running the pod with this UID, if known (never asks the backends). */
  podOwner(uid: string): string | undefined {
    const backend = uid === '' ? undefined : this.pods.get(uid);
    this.options.metrics.lookups.inc({ kind: 'pod', result: backend === undefined ? 'miss' : 'hit' });
    return backend;
  }

  /**
   * The backend that owns a sandbox or container with this ID, if the cache holds it (once the start-up rebuild is
   * over); never asks the backends.
   */
  async cachedOwner(id: string): Promise<string | undefined> {
    const now = this.sandboxes.get(id) ?? this.containers.get(id)?.backend;
    if (now !== undefined) return now;
    await this.rebuilding;
    return this.sandboxes.get(id) ?? this.containers.get(id)?.backend;
  }

  /** The backend a call naming this sandbox or container must go to. Never rejects. */
  async owner(kind: LookupKind, id: string, deadline?: number): Promise<Owner> {
    const { metrics } = this.options;
    let backend = this.cached(kind, id);
    if (backend === undefined) {
      // During start-up the lists may still be coming in; they are bounded by the rebuild timeout.
      await this.rebuilding;
      backend = this.cached(kind, id);
    }
    metrics.lookups.inc({ kind, result: backend === undefined ? 'miss' : 'hit' });
    if (backend !== undefined) return { kind: 'owned', backend };
    if (id === '') return { kind: 'unknown', backend: this.options.defaultBackend };
    const key = `${kind}\0${id}`;
    let pending = this.inflight.get(key);
    if (pending === undefined) {
      pending = this.resolve(kind, id, deadline).finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    return pending;
  }

  private cached(kind: LookupKind, id: string): string | undefined {
    return kind === 'sandbox' ? this.sandboxes.get(id) : this.containers.get(id)?.backend;
  }

  /** Asks every backend for the object's status: the one that has it owns it. */
  private async resolve(kind: LookupKind, id: string, deadline: number | undefined): Promise<Owner> {
    const { call, backends, metrics, lookupTimeoutMs, defaultBackend } = this.options;
    const lookup = lookups[kind];
    const until = Math.min(deadline ?? Number.POSITIVE_INFINITY, this.now() + lookupTimeoutMs);
    const request = encodeMessage(lookup.request, { [lookup.field]: id });
    const replies = await callEvery({ call, backends, metadata: [], deadline: until }, backends, lookup.path, request);
    const found = replies.find((r) => r.reply.code === GrpcStatus.OK);
    if (found !== undefined) {
      metrics.resolutions.inc({ kind, result: 'found' });
      if (kind === 'sandbox') this.learnSandbox(id, found.backend);
      else this.learnContainer(id, found.backend);
      return { kind: 'owned', backend: found.backend };
    }
    const undecided = failuresOf(replies).filter((f) => f.code !== GrpcStatus.NOT_FOUND);
    if (undecided.length === 0) {
      metrics.resolutions.inc({ kind, result: 'unknown' });
      return { kind: 'unknown', backend: defaultBackend };
    }
    metrics.resolutions.inc({ kind, result: 'unavailable' });
    const detail = undecided.map((f) => `backend "${f.backend}" failed: ${statusName(f.code)}: ${f.message}`).join('; ');
    const message = `cri-proxy: cannot tell which backend owns ${kind} "${id}": ${detail}`;
    return { kind: 'unavailable', answer: { code: GrpcStatus.UNAVAILABLE, message, body: undefined } };
  }

  /**
   * Learns every sandbox and container each backend has. Calls naming an ID the cache does not hold wait for it
   * (at most `rebuildTimeoutMs`); a backend that fails is counted and its objects are found on demand instead.
   */
  rebuild(): Promise<RebuildReport[]> {
    const run = this.rebuildAll();
    this.rebuilding = run;
    return run;
  }

  private async rebuildAll(): Promise<RebuildReport[]> {
    const { call, backends, rebuildTimeoutMs, metrics, log } = this.options;
    const deadline = this.now() + rebuildTimeoutMs;
    const empty = Buffer.alloc(0);
    const fanOut = { call, backends, metadata: [], deadline };
    const [sandboxLists, containerLists] = await Promise.all([
      callEvery(fanOut, backends, `${SERVICE}/ListPodSandbox`, empty),
      callEvery(fanOut, backends, `${SERVICE}/ListContainers`, empty),
    ]);
    return backends.map((backend, i) => {
      const report = this.learnLists(backend, sandboxLists[i], containerLists[i]);
      metrics.rebuilds.inc({ backend, result: report.ok ? 'ok' : 'failed' });
      if (report.ok) log.info('ownership rebuilt', { ...report });
      else log.warn("ownership rebuild failed; this backend's objects are found on demand", { ...report });
      return report;
    });
  }

  private learnLists(backend: string, sandboxes: NamedReply | undefined, containers: NamedReply | undefined): RebuildReport {
    const failed = failuresOf([sandboxes, containers].filter((r): r is NamedReply => r !== undefined));
    if (failed.length > 0 || sandboxes === undefined || containers === undefined) {
      const error = failed.map((f) => `${statusName(f.code)}: ${f.message}`).join('; ') || 'no answer';
      return { backend, ok: false, sandboxes: 0, containers: 0, error };
    }
    // Once per start-up: resolving the paths from the schema here costs nothing worth caching.
    const paths = {
      sandboxId: resolvePath('runtime.v1.PodSandbox', 'id').numbers,
      podUid: resolvePath('runtime.v1.PodSandbox', 'metadata.uid').numbers,
      containerId: resolvePath('runtime.v1.Container', 'id').numbers,
      containerSandbox: resolvePath('runtime.v1.Container', 'pod_sandbox_id').numbers,
    };
    try {
      const pods = listItems(sandboxes.reply.body);
      for (const item of pods) this.learnSandbox(stringAt(item, paths.sandboxId) ?? '', backend, stringAt(item, paths.podUid));
      const ctrs = listItems(containers.reply.body);
      for (const item of ctrs)
        this.learnContainer(stringAt(item, paths.containerId) ?? '', backend, stringAt(item, paths.containerSandbox));
      return { backend, ok: true, sandboxes: pods.length, containers: ctrs.length };
    } catch (err) {
      return { backend, ok: false, sandboxes: 0, containers: 0, error: `malformed list: ${String(err)}` };
    }
  }

  private updateGauges(): void {
    const { entries } = this.options.metrics;
    for (const [kind, size] of Object.entries(this.size)) entries.set({ kind }, size);
  }
}
