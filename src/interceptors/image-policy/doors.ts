import { MethodColumn, fieldPath } from '../../chain/method-table';

/** The door's name in metrics and logs: the call through which images reach the node. */
export type DoorName = 'pull' | 'create' | 'restore';

/** One place in a request that names an image: an `ImageSpec`, and which of its fields name the image. */
export interface ImageSite {
  /** Dotted path of the `ImageSpec` (`[]` steps through each item of a repeated field). */
  readonly path: string;
  /** What the image is for, as denials say it: `image`, or `image volume` for a mount's image. */
  readonly noun: 'image' | 'image volume';
  /** Fields of the `ImageSpec` holding the name, preferred first: the name the user wrote wins over the ID kubelet resolved. */
  readonly nameFields: readonly string[];
  /** Decided even when absent (as an empty, hence malformed, reference): the image a container runs. */
  readonly required: boolean;
}

/** Where the image policy checks a call: every image it names, and where its namespace lies. */
export interface ImageDoor {
  readonly door: DoorName;
  readonly namespacePath: string;
  /** Paths of the `ContainerConfig`s the call creates containers from (none for a pull). */
  readonly containers: readonly string[];
  /** Every image the call names; the call passes only if each of them does. */
  readonly sites: readonly ImageSite[];
}

const USER_FIRST = ['user_specified_image', 'image'] as const;

/** The images a container config names: the container's own, and each image volume among its mounts. */
function containerSites(config: string): ImageSite[] {
  return [
    { path: `${config}.image`, noun: 'image', nameFields: USER_FIRST, required: true },
    { path: `${config}.mounts[].image`, noun: 'image volume', nameFields: USER_FIRST, required: false },
  ];
}

function containerDoor(door: DoorName, namespacePath: string, config: string): ImageDoor {
  return { door, namespacePath, containers: [config], sites: containerSites(config) };
}

/**
 * The doors through which an image reaches a node, by method. Every request field that carries an image is either
 * here or exempt, with its reason, in the door test (test/unit/image-policy-doors.test.ts), which walks the schema.
 */
export const imageDoors = new MethodColumn<ImageDoor>({
  // The image as pulled: a pull's user_specified_image is not what the runtime fetches.
  PullImage: (m) => ({
    door: 'pull',
    namespacePath: fieldPath(m, 'podNamespace'),
    containers: [],
    sites: [{ path: 'image', noun: 'image', nameFields: ['image'], required: true }],
  }),
  CreateContainer: (m) => containerDoor('create', fieldPath(m, 'podNamespace'), 'config'),
  // Containers restored from a checkpoint never pass CreateContainer.
  RestorePod: (m) => containerDoor('restore', fieldPath(m, 'podNamespace'), 'container_configs[]'),
});
