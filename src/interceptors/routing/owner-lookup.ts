/**
 * What the ownership cache asks the backends: at start-up, every sandbox and container each one has (their
 * lists); on a miss, which one has the sandbox or container a call names (its status).
 */
import { GrpcStatus } from '../../errors';
import type { Logger } from '../../log';
import { encodeMessage } from '../../messages/codec';
import { stringAt, wireFields } from '../../messages/protobuf-wire';
import { resolvePath } from '../../messages/wire-paths';
import type { CallBackend, NamedReply } from './backend-call';
import { callEvery, failuresOf, statusName, type BuiltAnswer } from './fan-out';
import type { RoutingMetrics } from './metrics';

const SERVICE = '/runtime.v1.RuntimeService';

/** What a lookup settled on. */
export type Owner =
  | { readonly kind: 'owned'; readonly backend: string }
  /** No backend knows the ID: the default backend gives its answer. */
  | { readonly kind: 'unknown'; readonly backend: string }
  /** Some backend could not be asked: routing anywhere could hide the object, so the call fails with `answer`. */
  | { readonly kind: 'unavailable'; readonly answer: BuiltAnswer };

export type LookupKind = 'sandbox' | 'container';

export interface RebuildReport {
  readonly backend: string;
  readonly ok: boolean;
  readonly sandboxes: number;
  readonly containers: number;
  /** Why it failed, when it did. */
  readonly error?: string;
}

/** The backends to ask, and how. */
export interface Asking {
  /** Backend order, the default first. */
  readonly backends: readonly string[];
  readonly defaultBackend: string;
  readonly call: CallBackend;
  readonly metrics: RoutingMetrics;
  readonly log: Logger;
}

/** What the lists teach, as the cache learns it. */
export interface Learner {
  learnSandbox(id: string, backend: string, podUid?: string): void;
  learnContainer(id: string, backend: string, sandboxId?: string): void;
}

const lookups = {
  sandbox: { path: `${SERVICE}/PodSandboxStatus`, request: 'runtime.v1.PodSandboxStatusRequest', field: 'pod_sandbox_id' },
  container: { path: `${SERVICE}/ContainerStatus`, request: 'runtime.v1.ContainerStatusRequest', field: 'container_id' },
} as const;

/** Asks every backend for the object's status: the one that has it owns it. */
export async function askOwner(asking: Asking, kind: LookupKind, id: string, deadline: number): Promise<Owner> {
  const { call, backends, metrics, defaultBackend } = asking;
  const lookup = lookups[kind];
  const request = encodeMessage(lookup.request, { [lookup.field]: id });
  const replies = await callEvery({ call, backends, metadata: [], deadline }, backends, lookup.path, request);
  const found = replies.find((r) => r.reply.code === GrpcStatus.OK);
  if (found !== undefined) {
    metrics.resolutions.inc({ kind, result: 'found' });
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

/** Teaches `learner` every sandbox and container each backend lists; a backend that fails is counted and logged. */
export async function learnEveryList(asking: Asking, deadline: number, learner: Learner): Promise<RebuildReport[]> {
  const { call, backends, metrics, log } = asking;
  const empty = Buffer.alloc(0);
  const fanOut = { call, backends, metadata: [], deadline };
  const [sandboxLists, containerLists] = await Promise.all([
    callEvery(fanOut, backends, `${SERVICE}/ListPodSandbox`, empty),
    callEvery(fanOut, backends, `${SERVICE}/ListContainers`, empty),
  ]);
  return backends.map((backend, i) => {
    const report = learnLists(learner, backend, sandboxLists[i], containerLists[i]);
    metrics.rebuilds.inc({ backend, result: report.ok ? 'ok' : 'failed' });
    if (report.ok) log.info('ownership rebuilt', { ...report });
    else log.warn("ownership rebuild failed; this backend's objects are found on demand", { ...report });
    return report;
  });
}

function learnLists(
  learner: Learner,
  backend: string,
  sandboxes: NamedReply | undefined,
  containers: NamedReply | undefined,
): RebuildReport {
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
    for (const item of pods) learner.learnSandbox(stringAt(item, paths.sandboxId) ?? '', backend, stringAt(item, paths.podUid));
    const ctrs = listItems(containers.reply.body);
    for (const item of ctrs)
      learner.learnContainer(stringAt(item, paths.containerId) ?? '', backend, stringAt(item, paths.containerSandbox));
    return { backend, ok: true, sandboxes: pods.length, containers: ctrs.length };
  } catch (err) {
    return { backend, ok: false, sandboxes: 0, containers: 0, error: `malformed list: ${String(err)}` };
  }
}

/** Items of a list response's repeated field (number 1 in ListPodSandbox and ListContainers), each as its bytes. */
function listItems(body: Buffer | undefined): Buffer[] {
  if (body === undefined) return [];
  return wireFields(body)
    .filter((f) => f.number === 1 && f.wireType === 2)
    .map((f) => body.subarray(f.valueStart, f.end));
}
