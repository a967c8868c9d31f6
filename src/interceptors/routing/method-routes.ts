/**
 * How routing treats each CRI method, keyed by method name: where the call goes, what is merged, what the
 * ownership cache learns from it. Field paths are dotted snake_case, the method table's wherever it has them.
 */
import { MethodColumn, fieldPath } from '../../chain/method-table';
import type { MethodInfo } from '../../chain/types';
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
  /** RuntimeConfig: asked of every backend, answered only when they agree. */
  | { readonly kind: 'runtime-config' }
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
  /** CreateContainer: the owner must have the container's image first (image-flow.ts). */
  readonly ensuresImage?: boolean;
}

type Column = RouteEntry | ((method: MethodInfo) => RouteEntry);

const sandbox = (m: MethodInfo): RouteEntry => ({ route: { kind: 'sandbox', field: fieldPath(m, 'sandboxId') } });
const container = (m: MethodInfo): RouteEntry => ({ route: { kind: 'container', field: fieldPath(m, 'containerId') } });
const merge = (...lists: ListField[]): RouteEntry => ({ route: { kind: 'merge', lists } });
const mergeStream = (...lists: ListField[]): RouteEntry => ({ route: { kind: 'merge-stream', lists } });
const node = (kind: 'default' | 'all' | 'status' | 'runtime-config'): RouteEntry => ({ route: { kind } });
/** A new pod, placed by the rules; the backend learns the sandbox and the pod's UID. */
const place = (m: MethodInfo, ownership: OwnershipEffect = {}): RouteEntry => ({
  route: { kind: 'place' },
  handlerField: fieldPath(m, 'runtimeHandler'),
  ownership: { sandboxId: fieldPath(m, 'sandboxId', 'response'), podUid: fieldPath(m, 'podUid'), ...ownership },
});
const byImage =
  (kind: 'pull' | 'image-status' | 'image-remove'): Column =>
  (m) => ({
    route: { kind },
    handlerField: fieldPath(m, 'runtimeHandler'),
  });
const uniqueFs = (field: string): ListField => ({ field, uniqueBy: 'fs_id.mountpoint' });

const routes = new MethodColumn<RouteEntry>({
  Version: node('default'),
  Status: node('status'),
  UpdateRuntimeConfig: node('all'),
  RuntimeConfig: node('runtime-config'),

  RunPodSandbox: (m) => place(m),
  StopPodSandbox: sandbox,
  RemovePodSandbox: (m) => ({ ...sandbox(m), ownership: { forgetSandbox: fieldPath(m, 'sandboxId') } }),
  PodSandboxStatus: sandbox,
  ListPodSandbox: merge({ field: 'items' }),
  StreamPodSandboxes: mergeStream({ field: 'pod_sandboxes' }),
  UpdatePodSandboxResources: sandbox,

  CreateContainer: (m) => ({
    ...sandbox(m),
    handlerField: 'config.image.runtime_handler',
    ownership: { containerId: fieldPath(m, 'containerId', 'response'), sandboxOfContainer: fieldPath(m, 'sandboxId') },
    ensuresImage: true,
  }),
  StartContainer: container,
  StopContainer: container,
  RemoveContainer: (m) => ({ ...container(m), ownership: { forgetContainer: fieldPath(m, 'containerId') } }),
  ListContainers: merge({ field: 'containers' }),
  StreamContainers: mergeStream({ field: 'containers' }),
  ContainerStatus: container,
  UpdateContainerResources: container,
  ReopenContainerLog: container,

  ExecSync: container,
  Exec: container,
  Attach: container,
  PortForward: sandbox,

  ContainerStats: container,
  ListContainerStats: merge({ field: 'stats' }),
  StreamContainerStats: mergeStream({ field: 'container_stats' }),
  PodSandboxStats: sandbox,
  ListPodSandboxStats: merge({ field: 'stats' }),
  StreamPodSandboxStats: mergeStream({ field: 'pod_sandbox_stats' }),
  // Each runtime describes the same metric names: one description each.
  ListMetricDescriptors: merge({ field: 'descriptors', uniqueBy: 'name' }),
  ListPodSandboxMetrics: merge({ field: 'pod_metrics' }),
  StreamPodSandboxMetrics: mergeStream({ field: 'pod_sandbox_metrics' }),

  CheckpointContainer: container,
  CheckpointPod: sandbox,
  RestorePod: (m) => place(m, { containerIds: 'restored_containers.container_id' }),

  GetContainerEvents: { route: { kind: 'events' } },

  // An image present on several runtimes is listed once (same ID), as the first backend has it.
  ListImages: merge({ field: 'images', uniqueBy: 'id' }),
  StreamImages: mergeStream({ field: 'images', uniqueBy: 'id' }),
  ImageStatus: byImage('image-status'),
  PullImage: byImage('pull'),
  RemoveImage: byImage('image-remove'),
  ImageFsInfo: merge(uniqueFs('image_filesystems'), uniqueFs('container_filesystems')),
} satisfies Record<string, Column>);

export const methodRoutes: Readonly<Record<string, RouteEntry>> = routes.byName;
