/**
 * How routing treats each CRI method, keyed by method name: where the call goes, what is merged, what the
 * ownership cache learns from it. Field paths are dotted snake_case, as in the method table.
 */
import type { ListField } from './list-merge';

export type MethodRoute =
  /** A new pod: the rules pick the backend (RunPodSandbox, RestorePod). */
  | { readonly kind: 'place' }
  /** The backend that owns the sandbox named at `field`. */
  | { readonly kind: 'sandbox'; readonly field: string }
  /** The backend that owns the container named at `field`. */
  | { readonly kind: 'container'; readonly field: string }
  /** PullImage: where the pod it is for runs, else the rules on its sandbox config and image handler. */
  | { readonly kind: 'pull' }
  /** The image's backend: by its handler when given, else the first backend that has it. */
  | { readonly kind: 'image-status' }
  /** By its handler when given, else every backend that has the image. */
  | { readonly kind: 'image-remove' }
  /** Every backend's answer merged into one. */
  | { readonly kind: 'merge'; readonly lists: readonly ListField[] }
  /** Every backend's stream merged into one. */
  | { readonly kind: 'merge-stream'; readonly lists: readonly ListField[] }
  /** Status: conditions combined, handlers and features merged. */
  | { readonly kind: 'status' }
  /** Node-wide, answered by the default backend. */
  | { readonly kind: 'default' }
  /** Node-wide, sent to every backend; OK only when all of them say so. */
  | { readonly kind: 'all' }
  /** GetContainerEvents: one upstream per backend, shared by every subscriber. */
  | { readonly kind: 'events' };

/** Ownership learned from a successful call (request and response paths), or dropped by it. */
export interface OwnershipEffect {
  /** Response: the new sandbox's ID. */
  readonly sandboxId?: string;
  /** Request: the pod's UID, so its PullImage calls find the backend. */
  readonly podUid?: string;
  /** Response: the new container's ID. */
  readonly containerId?: string;
  /** Request: the sandbox that new container belongs to. */
  readonly sandboxOfContainer?: string;
  /** Response: IDs of containers created along with the sandbox (a repeated message's field). */
  readonly containerIds?: string;
  /** Request: the sandbox removed (with its containers). */
  readonly forgetSandbox?: string;
  /** Request: the container removed. */
  readonly forgetContainer?: string;
}

export interface RouteEntry {
  readonly route: MethodRoute;
  /** Request path of a RuntimeClass handler to translate for the chosen backend (see `handlers`). */
  readonly handlerField?: string;
  readonly ownership?: OwnershipEffect;
}

const sandbox = (field = 'pod_sandbox_id'): RouteEntry => ({ route: { kind: 'sandbox', field } });
const container: RouteEntry = { route: { kind: 'container', field: 'container_id' } };
const merge = (...lists: ListField[]): RouteEntry => ({ route: { kind: 'merge', lists } });
const mergeStream = (...lists: ListField[]): RouteEntry => ({ route: { kind: 'merge-stream', lists } });
const node = (kind: 'default' | 'all' | 'status'): RouteEntry => ({ route: { kind } });
const imageHandler = 'image.runtime_handler';
const uniqueFs = (field: string): ListField => ({ field, uniqueBy: 'fs_id.mountpoint' });

export const methodRoutes: Readonly<Record<string, RouteEntry>> = Object.freeze({
  Version: node('default'),
  Status: node('status'),
  UpdateRuntimeConfig: node('all'),
  RuntimeConfig: node('default'),

  RunPodSandbox: {
    route: { kind: 'place' },
    handlerField: 'runtime_handler',
    ownership: { sandboxId: 'pod_sandbox_id', podUid: 'config.metadata.uid' },
  },
  StopPodSandbox: sandbox(),
  RemovePodSandbox: { ...sandbox(), ownership: { forgetSandbox: 'pod_sandbox_id' } },
  PodSandboxStatus: sandbox(),
  ListPodSandbox: merge({ field: 'items' }),
  StreamPodSandboxes: mergeStream({ field: 'pod_sandboxes' }),
  UpdatePodSandboxResources: sandbox(),

  CreateContainer: {
    ...sandbox(),
    handlerField: 'config.image.runtime_handler',
    ownership: { containerId: 'container_id', sandboxOfContainer: 'pod_sandbox_id' },
  },
  StartContainer: container,
  StopContainer: container,
  RemoveContainer: { ...container, ownership: { forgetContainer: 'container_id' } },
  ListContainers: merge({ field: 'containers' }),
  StreamContainers: mergeStream({ field: 'containers' }),
  ContainerStatus: container,
  UpdateContainerResources: container,
  ReopenContainerLog: container,

  ExecSync: container,
  Exec: container,
  Attach: container,
  PortForward: sandbox(),

  ContainerStats: container,
  ListContainerStats: merge({ field: 'stats' }),
  StreamContainerStats: mergeStream({ field: 'container_stats' }),
  PodSandboxStats: sandbox(),
  ListPodSandboxStats: merge({ field: 'stats' }),
  StreamPodSandboxStats: mergeStream({ field: 'pod_sandbox_stats' }),
  // Each runtime describes the same metric names: one description each.
  ListMetricDescriptors: merge({ field: 'descriptors', uniqueBy: 'name' }),
  ListPodSandboxMetrics: merge({ field: 'pod_metrics' }),
  StreamPodSandboxMetrics: mergeStream({ field: 'pod_sandbox_metrics' }),

  CheckpointContainer: container,
  CheckpointPod: sandbox(),
  RestorePod: {
    route: { kind: 'place' },
    handlerField: 'runtime_handler',
    ownership: { sandboxId: 'pod_sandbox_id', podUid: 'config.metadata.uid', containerIds: 'restored_containers.container_id' },
  },

  GetContainerEvents: { route: { kind: 'events' } },

  // An image present on several runtimes is listed once (same ID), as the first backend has it.
  ListImages: merge({ field: 'images', uniqueBy: 'id' }),
  StreamImages: mergeStream({ field: 'images', uniqueBy: 'id' }),
  ImageStatus: { route: { kind: 'image-status' }, handlerField: imageHandler },
  PullImage: { route: { kind: 'pull' }, handlerField: imageHandler },
  RemoveImage: { route: { kind: 'image-remove' }, handlerField: imageHandler },
  ImageFsInfo: merge(uniqueFs('image_filesystems'), uniqueFs('container_filesystems')),
} satisfies Record<string, RouteEntry>);
