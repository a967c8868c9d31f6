import type { FieldPaths, MethodInfo } from './types';

/** The phases of a pod start, each one CRI method. */
export type PodStartPhaseName = 'sandbox' | 'pull' | 'create' | 'start';

/** Where the image policy checks a call: the door it guards, and where in the request the image and namespace lie. */
export interface ImageCheck {
  readonly door: 'pull' | 'create';
  /** Field paths of the image, preferred first: the name the user wrote wins over the ID kubelet resolved. */
  readonly imagePaths: readonly string[];
  readonly namespacePath: string;
}

/** Facts about a method that only some interceptors need: columns of the table beyond MethodInfo. */
export interface MethodFacts {
  readonly imageCheck?: ImageCheck;
  /** A pull, or the ImageStatus kubelet sends after one (whose answer holds the pulled image's size). */
  readonly imageRole?: 'pull' | 'status';
  readonly podStartPhase?: PodStartPhaseName;
  /** A stream with no end of its own (a watch): ended at shutdown, so clients subscribe again elsewhere. */
  readonly watch?: true;
}

/**
 * Every CRI v1 method the proxy understands. Each row is a short tuple; all per-method differences live in
 * these rows. Flags: `s` server-streaming, `m` mutating, `p` polled by kubelet in a loop.
 */
type Row = readonly [
  name: string,
  flags: '' | 's' | 'm' | 'p' | 'sp',
  requestFields?: FieldPaths,
  responseFields?: FieldPaths,
  types?: readonly [request: string, response: string] | undefined,
  facts?: MethodFacts,
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

  [
    'RunPodSandbox',
    'm',
    { ...pod('config.metadata'), runtimeHandler: 'runtime_handler' },
    { sandboxId: 'pod_sandbox_id' },
    undefined,
    { podStartPhase: 'sandbox' },
  ],
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
    undefined,
    {
      imageCheck: {
        door: 'create',
        imagePaths: ['config.image.user_specified_image', 'config.image.image'],
        namespacePath: 'sandbox_config.metadata.namespace',
      },
      podStartPhase: 'create',
    },
  ],
  ['StartContainer', 'm', container, {}, undefined, { podStartPhase: 'start' }],
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

  ['GetContainerEvents', 's', {}, {}, ['GetEventsRequest', 'ContainerEventResponse'], { watch: true }],
];

const imageRows: readonly Row[] = [
  ['ListImages', 'p', imageFilter],
  ['StreamImages', 'sp', imageFilter],
  ['ImageStatus', 'p', image('image'), { image: 'image.id' }, undefined, { imageRole: 'status' }],
  [
    'PullImage',
    'm',
    { ...image('image'), ...pod('sandbox_config.metadata') },
    { image: 'image_ref' },
    undefined,
    {
      imageCheck: { door: 'pull', imagePaths: ['image.image'], namespacePath: 'sandbox_config.metadata.namespace' },
      imageRole: 'pull',
      podStartPhase: 'pull',
    },
  ],
  ['RemoveImage', 'm', image('image')],
  ['ImageFsInfo', 'p'],
];

const noFacts: MethodFacts = Object.freeze({});
const factsByPath = new Map<string, MethodFacts>();

function build(service: string, row: Row): MethodInfo {
  const [name, flags, requestFields = {}, responseFields = {}, types, facts] = row;
  const [req, res] = types ?? [`${name}Request`, `${name}Response`];
  if (facts !== undefined) factsByPath.set(`/${service}/${name}`, Object.freeze(facts));
  return Object.freeze({
    path: `/${service}/${name}`,
    service,
    name,
    known: true,
    kind: flags.includes('s') ? 'server-stream' : 'unary',
    mutating: flags.includes('m'),
    polling: flags.includes('p'),
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

/** The method's facts beyond MethodInfo; none for methods outside the table. */
export function methodFacts(method: MethodInfo): MethodFacts {
  return (method.known ? factsByPath.get(method.path) : undefined) ?? noFacts;
}

const responseRead = new WeakMap<MethodInfo, boolean>();

/** The chain reads the responses of methods whose table row names response fields: those are kept whole. */
export function readsResponse(method: MethodInfo): boolean {
  let reads = responseRead.get(method);
  if (reads === undefined) responseRead.set(method, (reads = Object.keys(method.responseFields).length > 0));
  return reads;
}
