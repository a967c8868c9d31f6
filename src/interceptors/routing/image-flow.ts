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
import { WireFormatError } from '../../messages/protobuf-wire';
import { classifyImage } from '../../policies/image-reference';
import type { CallBackend, MetadataFields } from './backend-call';
import { callEvery, statusName, type BuiltAnswer } from './fan-out';
import {
  heldIn,
  imageSlots,
  imageStatusRequest,
  podOf,
  pullRequest,
  specImages,
  withImage,
  type Held,
  type ImageSlot,
} from './image-flow-wire';
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

type SlotReady = { readonly kind: 'ready'; readonly image?: string } | { readonly kind: 'failed'; readonly answer: BuiltAnswer };

export class ImageFlow {
  constructor(private readonly options: ImageFlowOptions) {}

  /** Makes the images of a CreateContainer call (its own, its image volumes') present on the runtime that owns its pod. */
  async beforeCreate(c: CreateCall): Promise<ImageReady> {
    let slots: ImageSlot[];
    try {
      slots = imageSlots(c.request);
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

  /** One image: present on the owner as named, under another ID of the owner's (`image`), or pulled there. */
  private async ensure(c: CreateCall, spec: Buffer): Promise<SlotReady> {
    const { image, userImage } = specImages(spec);
    const onOwner = await this.status(c, c.owner, spec);
    // Present, or the owner cannot say: the call goes on and the runtime answers it.
    if (onOwner === undefined || onOwner.id !== undefined) return { kind: 'ready' };

    const byId = classifyImage(image).kind === 'id';
    const pod = podOf(c.request);
    const absent = `is not on backend "${c.owner}", which runs pod ${pod}`;
    if (byId && userImage !== '' && userImage !== image) {
      const named = await this.status(c, c.owner, withImage(spec, userImage));
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
      const message = `image "${userImage || image}" ${absent}, and pulling it there for kubelet is turned off (images.pullOnCreate)`;
      return this.failed(c.owner, 'not_pulled', GrpcStatus.FAILED_PRECONDITION, message);
    }
    const reference = userImage !== '' ? userImage : byId ? await this.digestElsewhere(c, spec) : image;
    if (reference === undefined) {
      const message =
        `image ${image} ${absent}, and cannot be pulled there: ` +
        'kubelet named it only by ID, and no backend that has it knows a digest to pull it by';
      return this.failed(c.owner, 'pull_failed', GrpcStatus.FAILED_PRECONDITION, message);
    }
    const auth = this.options.credentials.for(reference);
    const pulled = await c.pull(c.owner, pullRequest(c.request, spec, reference, auth));
    const fields = { backend: c.owner, image: reference, pod };
    if (pulled.code !== GrpcStatus.OK) {
      this.options.log.warn('could not pull an image onto the runtime of the pod it is for', {
        ...fields,
        code: pulled.code,
        error: pulled.message,
      });
      const message = `image "${reference}" ${absent}; pulling it there failed: ${statusName(pulled.code)}: ${pulled.message}`;
      return this.failed(c.owner, pulled.refused ? 'pull_denied' : 'pull_failed', pulled.code, message);
    }
    this.count(c.owner, 'pulled');
    this.options.log.info('pulled an image onto the runtime of the pod it is for', { ...fields, imageRef: pulled.imageRef });
    // The runtime now has the image: by the ID kubelet named, or (pulled by name) under an ID of its own.
    const own = pulled.imageRef;
    return byId && own !== undefined && own !== '' && own !== image ? { kind: 'ready', image: own } : { kind: 'ready' };
  }

  /** The call fails with `code` and `message` (said to come from the proxy), counted as `outcome`. */
  private failed(backend: string, outcome: MissingImageOutcome, code: number, message: string): SlotReady {
    this.count(backend, outcome);
    return { kind: 'failed', answer: { code, message: `cri-proxy: ${message}`, body: undefined } };
  }

  private count(backend: string, outcome: MissingImageOutcome): void {
    this.options.metrics.missingImages.inc({ backend, outcome });
  }

  /** ImageStatus of `spec` on `backend`. */
  private async status(c: CreateCall, backend: string, spec: Buffer): Promise<Held | undefined> {
    let reply;
    try {
      reply = await this.options.call(backend, IMAGE_STATUS, imageStatusRequest(spec), c.metadata, c.deadline);
    } catch {
      return undefined;
    }
    return reply.code === GrpcStatus.OK ? heldIn(reply.body) : undefined;
  }

  /** A digest reference (`repo@sha256:…`) of the image from a backend that has it: the same content, wherever pulled. */
  private async digestElsewhere(c: CreateCall, spec: Buffer): Promise<string | undefined> {
    const others = this.options.backends.filter((b) => b !== c.owner);
    const fanOut = { call: this.options.call, backends: others, metadata: c.metadata, deadline: c.deadline };
    const replies = await callEvery(fanOut, others, IMAGE_STATUS, imageStatusRequest(spec));
    for (const { reply } of replies) {
      const held = reply.code === GrpcStatus.OK ? heldIn(reply.body) : undefined;
      const [digest] = held?.digests ?? [];
      if (digest !== undefined && digest !== '') return digest;
    }
    return undefined;
  }
}
