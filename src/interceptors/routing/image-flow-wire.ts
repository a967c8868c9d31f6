/**
 * What the image flow reads and writes on the wire: the images a CreateContainer request needs and the request
 * with one of them renamed, what an ImageStatus answer says a runtime holds, and the PullImageRequest kubelet
 * would have sent for the pod.
 */
import {
  itemsOf,
  lengthDelimited,
  messageAt,
  replaceItem,
  replaceMessageAt,
  replaceStringAt,
  stringAt,
  wireFields,
  WireFormatError,
} from '../../messages/protobuf-wire';
import { resolvePath } from '../../messages/wire-paths';

interface Paths {
  readonly config: readonly number[];
  readonly containerImage: readonly number[];
  readonly mounts: number;
  readonly mountImage: readonly number[];
  readonly sandboxConfig: readonly number[];
  readonly podName: readonly number[];
  readonly podNamespace: readonly number[];
  readonly specImage: readonly number[];
  readonly specUserImage: readonly number[];
  readonly statusImage: readonly number[];
  readonly imageId: readonly number[];
  readonly repoDigests: number;
  readonly pullSpec: number;
  readonly pullAuth: number;
  readonly pullSandbox: number;
}

function resolvePaths(): Paths {
  const at = (type: string, path: string): readonly number[] => resolvePath(`runtime.v1.${type}`, path).numbers;
  const one = (type: string, path: string): number => at(type, path)[0] as number;
  return {
    config: at('CreateContainerRequest', 'config'),
    containerImage: at('ContainerConfig', 'image'),
    mounts: one('ContainerConfig', 'mounts'),
    mountImage: at('Mount', 'image'),
    sandboxConfig: at('CreateContainerRequest', 'sandbox_config'),
    podName: at('PodSandboxConfig', 'metadata.name'),
    podNamespace: at('PodSandboxConfig', 'metadata.namespace'),
    specImage: at('ImageSpec', 'image'),
    specUserImage: at('ImageSpec', 'user_specified_image'),
    statusImage: at('ImageStatusResponse', 'image'),
    imageId: at('Image', 'id'),
    repoDigests: one('Image', 'repo_digests'),
    pullSpec: one('PullImageRequest', 'image'),
    pullAuth: one('PullImageRequest', 'auth'),
    pullSandbox: one('PullImageRequest', 'sandbox_config'),
  };
}

let resolved: Paths | undefined;
/** Resolved from the schema on first use, not when routing is loaded. */
const paths = (): Paths => (resolved ??= resolvePaths());

/** What a runtime said of an image. */
export interface Held {
  /** Undefined when it does not have the image. */
  readonly id: string | undefined;
  readonly digests: readonly string[];
}

/** An image a CreateContainer call needs (the container's, an image volume's): its spec, and how to name another. */
export interface ImageSlot {
  readonly spec: Buffer;
  /** The request with this slot's image replaced by `image`. */
  readonly renamed: (request: Buffer, image: string) => Buffer;
}

/** The images a CreateContainer request names. Throws WireFormatError when it does not decode. */
export function imageSlots(request: Buffer): ImageSlot[] {
  const p = paths();
  const config = messageAt(request, p.config) ?? Buffer.alloc(0);
  const named = (spec: Buffer | undefined): boolean => spec !== undefined && (stringAt(spec, p.specImage) ?? '') !== '';
  const slots: ImageSlot[] = [];
  const image = messageAt(config, p.containerImage);
  if (image !== undefined && named(image)) {
    const path = [...p.config, ...p.containerImage, ...p.specImage];
    slots.push({ spec: image, renamed: (r, id) => replaceStringAt(r, path, id) });
  }
  itemsOf(config, p.mounts).forEach((mount, index) => {
    const spec = messageAt(mount, p.mountImage);
    if (spec === undefined || !named(spec)) return;
    const path = [...p.mountImage, ...p.specImage];
    const renamed = (r: Buffer, id: string): Buffer => {
      const current = messageAt(r, p.config) ?? Buffer.alloc(0);
      return replaceMessageAt(
        r,
        p.config,
        replaceItem(current, p.mounts, index, (m) => replaceStringAt(m, path, id)),
      );
    };
    slots.push({ spec, renamed });
  });
  return slots;
}

/** The image an ImageSpec names, and the one the user wrote (empty when kubelet did not send it). */
export function specImages(spec: Buffer): { readonly image: string; readonly userImage: string } {
  const p = paths();
  return { image: stringAt(spec, p.specImage) ?? '', userImage: stringAt(spec, p.specUserImage) ?? '' };
}

/** The ImageSpec naming `image` instead. */
export function withImage(spec: Buffer, image: string): Buffer {
  return replaceStringAt(spec, paths().specImage, image);
}

/** An ImageStatusRequest for `spec`. */
export function imageStatusRequest(spec: Buffer): Buffer {
  return lengthDelimited(1, spec);
}

/** What an ImageStatus answer says the runtime holds; undefined when the answer does not decode. */
export function heldIn(body: Buffer | undefined): Held | undefined {
  const p = paths();
  try {
    const image = messageAt(body ?? Buffer.alloc(0), p.statusImage);
    if (image === undefined) return { id: undefined, digests: [] };
    const digests = wireFields(image)
      .filter((f) => f.number === p.repoDigests)
      .map((f) => image.subarray(f.valueStart, f.end).toString('utf8'));
    return { id: stringAt(image, p.imageId) ?? '', digests };
  } catch (err) {
    if (err instanceof WireFormatError) return undefined;
    throw err;
  }
}

/** The PullImageRequest kubelet would have sent for this pod: the image spec, its credentials, the pod's config. */
export function pullRequest(request: Buffer, spec: Buffer, reference: string, auth: Buffer | undefined): Buffer {
  const p = paths();
  const sandbox = messageAt(request, p.sandboxConfig);
  return Buffer.concat([
    lengthDelimited(p.pullSpec, withImage(spec, reference)),
    ...(auth === undefined ? [] : [lengthDelimited(p.pullAuth, auth)]),
    ...(sandbox === undefined ? [] : [lengthDelimited(p.pullSandbox, sandbox)]),
  ]);
}

/** `namespace/name` of the pod a CreateContainer call is for, for messages and logs. */
export function podOf(request: Buffer): string {
  const p = paths();
  try {
    const sandbox = messageAt(request, p.sandboxConfig) ?? Buffer.alloc(0);
    return `${stringAt(sandbox, p.podNamespace) ?? ''}/${stringAt(sandbox, p.podName) ?? ''}`;
  } catch {
    return '(unreadable)';
  }
}
