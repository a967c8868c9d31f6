/**
 * The fields pod starts are followed by, read on the wire from the bytes of each call: nothing is decoded, and the
 * CRI schema is not needed at run time (a proxy with no interceptor never loads a protobuf library). The field
 * numbers of each path are written down here; a unit test checks every one against the schema.
 */
import { itemsOf, messageAt, stringAt, varintAt } from '../messages/protobuf-wire';

const PKG = 'runtime.v1';
const podMetadata = (prefix: string, numbers: readonly number[]): Record<string, readonly number[]> => ({
  [`${prefix}.name`]: [...numbers, 1],
  [`${prefix}.uid`]: [...numbers, 2],
  [`${prefix}.namespace`]: [...numbers, 3],
});

/** Message type → dotted field path (as the method table writes it) → field numbers. */
export const podStartWirePaths: Readonly<Record<string, Readonly<Record<string, readonly number[]>>>> = {
  [`${PKG}.RunPodSandboxRequest`]: { ...podMetadata('config.metadata', [1, 1]), runtime_handler: [2] },
  [`${PKG}.RunPodSandboxResponse`]: { pod_sandbox_id: [1] },
  [`${PKG}.PullImageRequest`]: {
    'image.image': [1, 1],
    'image.runtime_handler': [1, 19],
    ...podMetadata('sandbox_config.metadata', [3, 1]),
  },
  [`${PKG}.PullImageResponse`]: { image_ref: [1] },
  [`${PKG}.CreateContainerRequest`]: {
    pod_sandbox_id: [1],
    'config.metadata.name': [2, 1, 1],
    'config.image.image': [2, 2, 1],
    'config.image.user_specified_image': [2, 2, 18],
    ...podMetadata('sandbox_config.metadata', [3, 1]),
  },
  [`${PKG}.CreateContainerResponse`]: { container_id: [1] },
  [`${PKG}.StartContainerRequest`]: { container_id: [1] },
  [`${PKG}.ImageStatusResponse`]: { image: [1], 'image.id': [1, 1], 'image.repo_digests': [1, 3], 'image.size': [1, 4] },
};

function numbersOf(type: string | undefined, path: string): readonly number[] {
  const numbers = type === undefined ? undefined : podStartWirePaths[type]?.[path];
  if (numbers === undefined) throw new Error(`pod starts read ${type ?? 'a message'}.${path}, whose field numbers are not written down`);
  return numbers;
}

/** The string at `path` of a message of `type` ("" and unset alike: undefined). Throws WireFormatError on bad bytes. */
export function wireString(bytes: Buffer, type: string | undefined, path: string): string | undefined {
  const value = stringAt(bytes, numbersOf(type, path));
  return value === '' ? undefined : value;
}

/**
 * The strings at several paths of one message of `type` (key → path; "" and unset alike are left out); paths
 * under the same message find it once. Throws WireFormatError on bad bytes.
 */
export function wireStrings<K extends string>(
  bytes: Buffer,
  type: string | undefined,
  paths: Readonly<Partial<Record<K, string>>>,
): Partial<Record<K, string>> {
  const found: Partial<Record<K, string>> = {};
  const parents = new Map<string, Buffer | undefined>();
  for (const [key, path] of Object.entries(paths) as [K, string | undefined][]) {
    if (path === undefined) continue;
    const numbers = numbersOf(type, path);
    const parentKey = numbers.slice(0, -1).join('.');
    let parent = parents.get(parentKey);
    if (!parents.has(parentKey)) parents.set(parentKey, (parent = messageAt(bytes, numbers.slice(0, -1))));
    const value = parent === undefined ? undefined : stringAt(parent, numbers.slice(-1));
    if (value !== undefined && value !== '') found[key] = value;
  }
  return found;
}

/** What an ImageStatus answer says of its image: what matches a pull (its id, its repo digests), and its size. */
export interface ImageStatusFacts {
  readonly id: string | undefined;
  readonly repoDigests: readonly string[];
  readonly size: number | undefined;
}

const IMAGE_STATUS = `${PKG}.ImageStatusResponse`;

/** The facts of an ImageStatus answer; undefined when it names no image. Throws WireFormatError on bad bytes. */
export function imageStatusFacts(bytes: Buffer): ImageStatusFacts | undefined {
  const image = messageAt(bytes, numbersOf(IMAGE_STATUS, 'image'));
  if (image === undefined) return undefined;
  const digests = numbersOf(IMAGE_STATUS, 'image.repo_digests').at(-1) as number;
  return {
    id: wireString(bytes, IMAGE_STATUS, 'image.id'),
    repoDigests: itemsOf(image, digests).map((digest) => digest.toString('utf8')),
    size: varintAt(bytes, numbersOf(IMAGE_STATUS, 'image.size')),
  };
}
