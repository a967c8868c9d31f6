import type { CriField, FieldPaths, MethodInfo } from './types';

/**
 * Every CRI v1 method the proxy understands. Each row is a short tuple; all per-method differences live in
 * these rows. Flags: `s` server-streaming, `m` mutating, `p` polled by kubelet in a loop, `w` a watch. Facts only
 * some features need are columns of their own beside each feature (see MethodColumn).
 */
type Row = readonly [
  name: string,
  flags: '' | 's' | 'm' | 'p' | 'sp' | 'sw',
  requestFields?: FieldPaths,
  responseFields?: FieldPaths,
  types?: readonly [request: string, response: string],
];

const PKG = 'runtime.v1';

// Recurring field locations, named so the rows stay readable.
const sandbox: FieldPaths = { sandboxId: 'pod_sandbox_id' };
const container: FieldPaths = { containerId: 'container_id' };
const pod = (prefix: string): FieldPaths => ({
  podName: `${prefix}.name`,
  podNamespace: `${prefix}.namespace`,
  podUid: `${prefix}.uid`,
});
const image = (prefix: string): FieldPaths => ({
  image: `${prefix}.image`,
  runtimeHandler: `${prefix}.runtime_handler`,
});
// List/Stream filters name the object they narrow to; audit and policy treat that as the call's subject.
const containerFilter: FieldPaths = { containerId: 'filter.id', sandboxId: 'filter.pod_sandbox_id' };
const sandboxFilter: FieldPaths = { sandboxId: 'filter.id' };
const imageFilter: FieldPaths = { image: 'filter.image.image' };

const runtimeRows: readonly Row[] = [
  ['Version', 'p'],
  ['Status', 'p'],
  ['UpdateRuntimeConfig', 'm'],
  ['RuntimeConfig', 'p'],

  ['RunPodSandbox', 'm', { ...pod('config.metadata'), runtimeHandler: 'runtime_handler' }, { sandboxId: 'pod_sandbox_id' }],
  ['StopPodSandbox', 'm', sandbox],
  ['RemovePodSandbox', 'm', sandbox],
  ['PodSandboxStatus', 'p', sandbox, { sandboxId: 'status.id', ...pod('status.metadata'), runtimeHandler: 'status.runtime_handler' }],
  ['ListPodSandbox', 'p', sandboxFilter],
  ['StreamPodSandboxes', 'sp', sandboxFilter],
  ['UpdatePodSandboxResources', 'm', sandbox],

  [
    'CreateContainer',
    'm',
    {
      ...sandbox,
      ...pod('sandbox_config.metadata'),
      containerName: 'config.metadata.name',
      image: 'config.image.image',
    },
    { containerId: 'container_id' },
  ],
  ['StartContainer', 'm', container],
  ['StopContainer', 'm', container],
  ['RemoveContainer', 'm', container],
  ['ListContainers', 'p', containerFilter],
  ['StreamContainers', 'sp', containerFilter],
  ['ContainerStatus', 'p', container, { containerId: 'status.id', containerName: 'status.metadata.name', image: 'status.image.image' }],
  ['UpdateContainerResources', 'm', container],
  ['ReopenContainerLog', 'm', container],

  ['ExecSync', 'm', container],
  ['Exec', 'm', container],
  ['Attach', 'm', container],
  ['PortForward', 'm', sandbox],

  ['ContainerStats', 'p', container, { containerId: 'stats.attributes.id', containerName: 'stats.attributes.metadata.name' }],
  ['ListContainerStats', 'p', containerFilter],
  ['StreamContainerStats', 'sp', containerFilter],
  ['PodSandboxStats', 'p', sandbox, { sandboxId: 'stats.attributes.id', ...pod('stats.attributes.metadata') }],
  ['ListPodSandboxStats', 'p', sandboxFilter],
  ['StreamPodSandboxStats', 'sp', sandboxFilter],
  ['ListMetricDescriptors', 'p'],
  ['ListPodSandboxMetrics', 'p'],
  ['StreamPodSandboxMetrics', 'sp'],

  ['CheckpointContainer', 'm', container],
  ['CheckpointPod', 'm', sandbox],
  ['RestorePod', 'm', { ...pod('config.metadata'), runtimeHandler: 'runtime_handler' }, sandbox],

  // A stream with no end of its own: ended at shutdown, so clients subscribe again elsewhere.
  ['GetContainerEvents', 'sw', {}, {}, ['GetEventsRequest', 'ContainerEventResponse']],
];

const imageRows: readonly Row[] = [
  ['ListImages', 'p', imageFilter],
  ['StreamImages', 'sp', imageFilter],
  ['ImageStatus', 'p', image('image'), { image: 'image.id' }],
  ['PullImage', 'm', { ...image('image'), ...pod('sandbox_config.metadata') }, { image: 'image_ref' }],
  ['RemoveImage', 'm', image('image')],
  ['ImageFsInfo', 'p'],
];

function build(service: string, row: Row): MethodInfo {
  const [name, flags, requestFields = {}, responseFields = {}, types] = row;
  const [req, res] = types ?? [`${name}Request`, `${name}Response`];
  return Object.freeze({
    path: `/${service}/${name}`,
    service,
    name,
    known: true,
    kind: flags.includes('s') ? 'server-stream' : 'unary',
    mutating: flags.includes('m'),
    polling: flags.includes('p'),
    watch: flags.includes('w'),
    requestType: `${PKG}.${req}`,
    responseType: `${PKG}.${res}`,
    requestFields: Object.freeze({ ...requestFields }),
    responseFields: Object.freeze({ ...responseFields }),
  });
}

export const methodTable: readonly MethodInfo[] = Object.freeze([
  ...runtimeRows.map((r) => build(`${PKG}.RuntimeService`, r)),
  ...imageRows.map((r) => build(`${PKG}.ImageService`, r)),
]);

const byPath = new Map<string, MethodInfo>(methodTable.map((m) => [m.path, m]));

// Unknown paths come from newer kubelets (or anyone who can reach the socket), so the cache is bounded.
const UNKNOWN_CACHE_MAX = 256;
const unknownByPath = new Map<string, MethodInfo>();
const noFields: FieldPaths = Object.freeze({});

function describeUnknown(path: string): MethodInfo {
  const match = /^\/([^/]+)\/([^/]+)$/.exec(path);
  return Object.freeze({
    path,
    service: match?.[1] ?? '',
    name: match?.[2] ?? path,
    known: false,
    kind: 'unknown',
    mutating: false,
    polling: false,
    watch: false,
    requestType: undefined,
    responseType: undefined,
    requestFields: noFields,
    responseFields: noFields,
  });
}

/** The table row for a `:path`, or a descriptor with `known: false` that the proxy forwards blindly. */
export function lookupMethod(path: string): MethodInfo {
  const known = byPath.get(path);
  if (known) return known;
  let unknown = unknownByPath.get(path);
  if (!unknown) {
    if (unknownByPath.size >= UNKNOWN_CACHE_MAX) unknownByPath.clear();
    unknown = describeUnknown(path);
    unknownByPath.set(path, unknown);
  }
  return unknown;
}

/**
 * Per-method facts of one feature (the image policy's doors, routing's routes…), kept beside the feature instead
 * of in the table: values keyed by method name, each given as is or built from the method's row, so that field
 * paths are the table's (see `fieldPath`). A key that names no method of the table fails at load; a call looks
 * its value up with one Map lookup.
 */
export class MethodColumn<T> {
  /** Method names → values, frozen. */
  readonly byName: Readonly<Record<string, T>>;
  private readonly byMethod = new Map<MethodInfo, T>();

  constructor(values: Readonly<Record<string, T | ((method: MethodInfo) => T)>>) {
    const byName: Record<string, T> = {};
    for (const [name, value] of Object.entries(values)) {
      const method = methodTable.find((m) => m.name === name);
      if (method === undefined) throw new Error(`method column names "${name}", which is no method of the table`);
      const built = typeof value === 'function' ? (value as (method: MethodInfo) => T)(method) : value;
      byName[name] = built;
      this.byMethod.set(method, built);
    }
    this.byName = Object.freeze(byName);
  }

  /** The method's value; undefined for methods without one, and for methods outside the table. */
  of(method: MethodInfo): T | undefined {
    return this.byMethod.get(method);
  }
}

/** The path the table gives `field` in the method's request (or response); throws when it gives none. */
export function fieldPath(method: MethodInfo, field: CriField, side: 'request' | 'response' = 'request'): string {
  const path = (side === 'request' ? method.requestFields : method.responseFields)[field];
  if (path === undefined) throw new Error(`the method table gives ${method.name} no ${side} field ${field}`);
  return path;
}

const responseRead = new WeakMap<MethodInfo, boolean>();

/** The chain reads the responses of methods whose table row names response fields: those are kept whole. */
export function readsResponse(method: MethodInfo): boolean {
  let reads = responseRead.get(method);
  if (reads === undefined) responseRead.set(method, (reads = Object.keys(method.responseFields).length > 0));
  return reads;
}
