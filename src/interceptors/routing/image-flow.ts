/**
 * kubelet's own image flow across runtimes (docs/routing.md, "Images across runtimes"). kubelet asks ImageStatus
 * without saying for which pod, pulls only when told the image is absent (and always with `imagePullPolicy:
 * Always`), then creates the container naming the image, by the ID it was told as a rule. ImageStatus is answered
 * by whichever runtime has the image; so at CreateContainer routing makes sure the runtime that owns the pod has
 * each image the container needs (its own, and its image volumes') before the call goes there:
 *
 * 1. that runtime has the image kubelet names: nothing to do (no registry is asked);
 * 2. kubelet names an ID that runtime does not have, but it has the image the user wrote under an ID of its
 *    own (pulled at another time): the container is created from that one, the ID in the request replaced;
 * 3. otherwise it is pulled there first, on kubelet's behalf: the image the user wrote (a digest another runtime
 *    knows when kubelet gave only an ID), with the credentials kubelet last sent for that repository, for the pod
 *    being created, through the interceptors after routing (the image policy judges it as it judges kubelet's).
 */
import { GrpcStatus } from '../../errors';
import type { Logger } from '../../log';
import { classifyImage } from '../../policies/image-reference';
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
import type { CallBackend, MetadataFields } from './backend-call';
import { callEvery, statusName, type BuiltAnswer } from './fan-out';
import type { RoutingMetrics } from './metrics';
import type { PullCredentials } from './pull-credentials';

const IMAGE_STATUS = '/runtime.v1.ImageService/ImageStatus';

/** What routing did about an image the pod's runtime lacked (the `outcome` label of the metric). */
export type MissingImageOutcome = 'local_id' | 'pulled' | 'pull_denied' | 'pull_failed' | 'not_pulled';

/** How a pull made through the chain after routing ended. */
export interface PullOutcome {
  readonly code: number;
  readonly message: string;
  /** An interceptor after routing refused it (PERMISSION_DENIED: the image policy), rather than it failing. */
  readonly refused: boolean;
  /** PullImageResponse.image_ref, when it worked. */
  readonly imageRef: string | undefined;
}

/** Sends a PullImageRequest (its bytes) to `backend` through the interceptors after routing. */
export type PullThroughChain = (backend: string, request: Buffer) => Promise<PullOutcome>;

export interface ImageFlowOptions {
  /** Backend order, the default first. */
  readonly backends: readonly string[];
  readonly call: CallBackend;
  readonly pullOnCreate: boolean;
  readonly credentials: PullCredentials;
  readonly metrics: RoutingMetrics;
  readonly log: Logger;
}

export interface CreateCall {
  /** The CreateContainerRequest as it would go out (its handler already renamed for `owner`). */
  readonly request: Buffer;
  /** The backend that owns the pod. */
  readonly owner: string;
  readonly metadata: MetadataFields;
  readonly deadline: number | undefined;
  readonly pull: PullThroughChain;
}

export type ImageReady =
  /** Forward `request` (the given one, or with the image ID replaced). */
  | { readonly kind: 'ready'; readonly request: Buffer }
  /** The image cannot be had on the owner: fail the call with this. */
  | { readonly kind: 'failed'; readonly answer: BuiltAnswer };

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

/** What a runtime said of an image: undefined when it could not say (it failed, or its answer did not decode). */
interface Held {
  readonly id: string | undefined;
  readonly digests: readonly string[];
}

/** An image a CreateContainer call needs (the container's, an image volume's): its spec, and how to name another. */
interface ImageSlot {
  readonly spec: Buffer;
  /** The request with this slot's image replaced by `image`. */
  readonly renamed: (request: Buffer, image: string) => Buffer;
}

type SlotReady = { readonly kind: 'ready'; readonly image?: string } | { readonly kind: 'failed'; readonly answer: BuiltAnswer };

export class ImageFlow {
  private paths: Paths | undefined;

  constructor(private readonly options: ImageFlowOptions) {}

  /** Makes the images of a CreateContainer call (its own, its image volumes') present on the runtime that owns its pod. */
  async beforeCreate(c: CreateCall): Promise<ImageReady> {
    let slots: ImageSlot[];
    try {
      slots = this.slotsOf(c.request);
    } catch (err) {
      // A request that does not decode is the runtime's to refuse.
      if (err instanceof WireFormatError) return { kind: 'ready', request: c.request };
      throw err;
    }
    let request = c.request;
    for (const slot of slots) {
      const ready = await this.ensure(c, slot.spec);
      if (ready.kind === 'failed') return ready;
      if (ready.image !== undefined) request = slot.renamed(request, ready.image);
    }
    return { kind: 'ready', request };
  }

  private slotsOf(request: Buffer): ImageSlot[] {
    const paths = (this.paths ??= resolvePaths());
    const config = messageAt(request, paths.config) ?? Buffer.alloc(0);
    const named = (spec: Buffer | undefined): boolean => spec !== undefined && (stringAt(spec, paths.specImage) ?? '') !== '';
    const slots: ImageSlot[] = [];
    const image = messageAt(config, paths.containerImage);
    if (image !== undefined && named(image)) {
      const path = [...paths.config, ...paths.containerImage, ...paths.specImage];
      slots.push({ spec: image, renamed: (r, id) => replaceStringAt(r, path, id) });
    }
    itemsOf(config, paths.mounts).forEach((mount, index) => {
      const spec = messageAt(mount, paths.mountImage);
      if (spec === undefined || !named(spec)) return;
      const path = [...paths.mountImage, ...paths.specImage];
      const renamed = (r: Buffer, id: string): Buffer => {
        const current = messageAt(r, paths.config) ?? Buffer.alloc(0);
        return replaceMessageAt(
          r,
          paths.config,
          replaceItem(current, paths.mounts, index, (m) => replaceStringAt(m, path, id)),
        );
      };
      slots.push({ spec, renamed });
    });
    return slots;
  }

  /** One image: present on the owner as named, under another ID of the owner's (`image`), or pulled there. */
  private async ensure(c: CreateCall, spec: Buffer): Promise<SlotReady> {
    const paths = this.paths as Paths;
    const image = stringAt(spec, paths.specImage) ?? '';
    const userImage = stringAt(spec, paths.specUserImage) ?? '';
    const onOwner = await this.status(c, c.owner, spec);
    // Present, or the owner cannot say: the call goes on and the runtime answers it.
    if (onOwner === undefined || onOwner.id !== undefined) return { kind: 'ready' };

    const byId = classifyImage(image).kind === 'id';
    const pod = this.podOf(c.request);
    if (byId && userImage !== '' && userImage !== image) {
      const named = await this.status(c, c.owner, replaceStringAt(spec, paths.specImage, userImage));
      if (named?.id !== undefined && named.id !== '') {
        this.count(c.owner, 'local_id');
        this.options.log.info('the runtime of the pod has the image under an ID of its own; the container is created from it', {
          backend: c.owner,
          requested: image,
          used: named.id,
          pod,
        });
        return { kind: 'ready', image: named.id };
      }
    }
    if (!this.options.pullOnCreate) {
      this.count(c.owner, 'not_pulled');
      const message =
        `cri-proxy: image "${userImage || image}" is not on backend "${c.owner}", which runs pod ${pod}, and pulling it ` +
        'there for kubelet is turned off (images.pullOnCreate)';
      return { kind: 'failed', answer: { code: GrpcStatus.FAILED_PRECONDITION, message, body: undefined } };
    }
    const reference = userImage !== '' ? userImage : byId ? await this.digestElsewhere(c, spec) : image;
    if (reference === undefined) {
      this.count(c.owner, 'pull_failed');
      const message =
        `cri-proxy: image ${image} is not on backend "${c.owner}", which runs pod ${pod}, and cannot be pulled there: ` +
        'kubelet named it only by ID, and no backend that has it knows a digest to pull it by';
      return { kind: 'failed', answer: { code: GrpcStatus.FAILED_PRECONDITION, message, body: undefined } };
    }
    const pulled = await c.pull(c.owner, this.pullRequest(c.request, spec, reference));
    if (pulled.code !== GrpcStatus.OK) {
      this.count(c.owner, pulled.refused ? 'pull_denied' : 'pull_failed');
      this.options.log.warn('could not pull an image onto the runtime of the pod it is for', {
        backend: c.owner,
        image: reference,
        pod,
        code: pulled.code,
        error: pulled.message,
      });
      const message =
        `cri-proxy: image "${reference}" is not on backend "${c.owner}", which runs pod ${pod}; pulling it there failed: ` +
        `${statusName(pulled.code)}: ${pulled.message}`;
      return { kind: 'failed', answer: { code: pulled.code, message, body: undefined } };
    }
    this.count(c.owner, 'pulled');
    this.options.log.info('pulled an image onto the runtime of the pod it is for', {
      backend: c.owner,
      image: reference,
      imageRef: pulled.imageRef,
      pod,
    });
    // The runtime now has the image: by the ID kubelet named, or (pulled by name) under an ID of its own.
    const own = pulled.imageRef;
    return byId && own !== undefined && own !== '' && own !== image ? { kind: 'ready', image: own } : { kind: 'ready' };
  }

  private count(backend: string, outcome: MissingImageOutcome): void {
    this.options.metrics.missingImages.inc({ backend, outcome });
  }

  /** ImageStatus of `spec` on `backend`. */
  private async status(c: CreateCall, backend: string, spec: Buffer): Promise<Held | undefined> {
    let reply;
    try {
      reply = await this.options.call(backend, IMAGE_STATUS, lengthDelimited(1, spec), c.metadata, c.deadline);
    } catch {
      return undefined;
    }
    return reply.code === GrpcStatus.OK ? this.heldIn(reply.body) : undefined;
  }

  private heldIn(body: Buffer | undefined): Held | undefined {
    const paths = this.paths as Paths;
    try {
      const image = messageAt(body ?? Buffer.alloc(0), paths.statusImage);
      if (image === undefined) return { id: undefined, digests: [] };
      const digests = wireFields(image)
        .filter((f) => f.number === paths.repoDigests)
        .map((f) => image.subarray(f.valueStart, f.end).toString('utf8'));
      return { id: stringAt(image, paths.imageId) ?? '', digests };
    } catch (err) {
      if (err instanceof WireFormatError) return undefined;
      throw err;
    }
  }

  /** A digest reference (`repo@sha256:…`) of the image from a backend that has it: the same content, wherever pulled. */
  private async digestElsewhere(c: CreateCall, spec: Buffer): Promise<string | undefined> {
    const others = this.options.backends.filter((b) => b !== c.owner);
    const fanOut = { call: this.options.call, backends: others, metadata: c.metadata, deadline: c.deadline };
    const replies = await callEvery(fanOut, others, IMAGE_STATUS, lengthDelimited(1, spec));
    for (const { reply } of replies) {
      const held = reply.code === GrpcStatus.OK ? this.heldIn(reply.body) : undefined;
      const [digest] = held?.digests ?? [];
      if (digest !== undefined && digest !== '') return digest;
    }
    return undefined;
  }

  /** The PullImageRequest kubelet would have sent for this pod: the image spec, its credentials, the pod's config. */
  private pullRequest(request: Buffer, spec: Buffer, reference: string): Buffer {
    const paths = this.paths as Paths;
    const auth = this.options.credentials.for(reference);
    const sandbox = messageAt(request, paths.sandboxConfig);
    return Buffer.concat([
      lengthDelimited(paths.pullSpec, replaceStringAt(spec, paths.specImage, reference)),
      ...(auth === undefined ? [] : [lengthDelimited(paths.pullAuth, auth)]),
      ...(sandbox === undefined ? [] : [lengthDelimited(paths.pullSandbox, sandbox)]),
    ]);
  }

  /** `namespace/name` of the pod a CreateContainer call is for, for messages and logs. */
  private podOf(request: Buffer): string {
    const paths = this.paths as Paths;
    try {
      const sandbox = messageAt(request, paths.sandboxConfig) ?? Buffer.alloc(0);
      return `${stringAt(sandbox, paths.podNamespace) ?? ''}/${stringAt(sandbox, paths.podName) ?? ''}`;
    } catch {
      return '(unreadable)';
    }
  }
}
