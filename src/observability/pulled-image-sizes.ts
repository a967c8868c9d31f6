import { imageStatusFacts, wireString, type ImageStatusFacts } from './pod-start-wire';

/** How long a pulled image waits for the runtime to report its size, and how many may wait at once. */
const PENDING_TTL_MS = 120_000;
const PENDING_MAX = 128;

/**
 * Sizes of freshly pulled images. PullImageResponse carries only the image reference, and the proxy makes no
 * calls of its own on the call path; but kubelet asks ImageStatus right after a successful pull (for the size in
 * its "Pulled" event), so the size is taken from that answer when its image id (or a repo digest) matches a
 * reference pulled moments ago. Callers read ImageStatus answers (on the wire) only while `waiting`, so the
 * common ImageStatus call stays unread.
 */
export class PulledImageSizes<T> {
  /** image_ref of recent successful pulls → when the pull finished (ms) and what the caller tied to it. */
  private readonly pending = new Map<string, { readonly at: number; readonly value: T }>();

  constructor(private readonly now: () => number = Date.now) {}

  /**
   * After a successful PullImage, its answer (message bytes): the `image_ref` waits for its size, with `value` to
   * hand back then. Throws WireFormatError when the bytes are no protobuf message.
   */
  expect(pullAnswer: Buffer | undefined, value: T): void {
    const ref = pullAnswer === undefined ? undefined : wireString(pullAnswer, 'runtime.v1.PullImageResponse', 'image_ref');
    if (ref === undefined) return;
    const now = this.now();
    this.expire(now);
    if (this.pending.size >= PENDING_MAX) {
      const oldest = this.pending.keys().next();
      if (oldest.done !== true) this.pending.delete(oldest.value);
    }
    this.pending.delete(ref);
    this.pending.set(ref, { at: now, value });
  }

  /** True while a pulled image waits for its size: only then is an ImageStatus answer worth reading. */
  get waiting(): boolean {
    return this.pending.size > 0;
  }

  /**
   * An OK ImageStatus answer (its message bytes): the pull it matches (once) and the size the runtime reports, if
   * any. Throws WireFormatError when the bytes are no protobuf message.
   */
  match(response: Buffer | undefined): { readonly value: T; readonly bytes: number | undefined } | undefined {
    this.expire(this.now());
    const image = response === undefined ? undefined : imageStatusFacts(response);
    const ref = image === undefined ? undefined : this.matchingRef(image);
    const found = ref === undefined ? undefined : this.pending.get(ref);
    if (ref === undefined || found === undefined) return undefined;
    this.pending.delete(ref);
    const size = image?.size;
    return { value: found.value, bytes: size !== undefined && size > 0 ? size : undefined };
  }

  private matchingRef(image: ImageStatusFacts): string | undefined {
    if (image.id !== undefined && this.pending.has(image.id)) return image.id;
    // Runtimes whose pull reference is a repo digest rather than the image id.
    return image.repoDigests.find((digest) => this.pending.has(digest));
  }

  private expire(now: number): void {
    for (const [ref, { at }] of this.pending) {
      // Insertion order is time order, so the first fresh entry ends the sweep.
      if (now - at < PENDING_TTL_MS) return;
      this.pending.delete(ref);
    }
  }
}
