import type { DecodedMessage } from '../messages/codec';
import { fieldAt } from '../messages/field-at';

/** How long a pulled image waits for the runtime to report its size, and how many may wait at once. */
const PENDING_TTL_MS = 120_000;
const PENDING_MAX = 128;

/**
 * Sizes of freshly pulled images. PullImageResponse carries only the image reference, and the proxy makes no
 * calls of its own on the call path; but kubelet asks ImageStatus right after a successful pull (for the size in
 * its "Pulled" event), so the size is taken from that answer when its image id (or a repo digest) matches a
 * reference pulled moments ago. Callers decode ImageStatus answers only while `waiting`, so the common
 * ImageStatus call stays undecoded.
 */
export class PulledImageSizes<T> {
  /** image_ref of recent successful pulls → when the pull finished (ms) and what the caller tied to it. */
  private readonly pending = new Map<string, { readonly at: number; readonly value: T }>();

  constructor(private readonly now: () => number = Date.now) {}

  /** After a successful PullImage: its `image_ref` waits for its size, with `value` to hand back then. */
  expect(ref: string | undefined, value: T): void {
    if (ref === undefined || ref === '') return;
    const now = this.now();
    this.expire(now);
    if (this.pending.size >= PENDING_MAX) {
      const oldest = this.pending.keys().next();
      if (oldest.done !== true) this.pending.delete(oldest.value);
    }
    this.pending.delete(ref);
    this.pending.set(ref, { at: now, value });
  }

  /** True while a pulled image waits for its size: only then is an ImageStatus answer worth decoding. */
  get waiting(): boolean {
    return this.pending.size > 0;
  }

  /** An OK ImageStatus answer: the pull it matches (once) and the size the runtime reports, if any. */
  match(response: DecodedMessage | undefined): { readonly value: T; readonly bytes: number | undefined } | undefined {
    this.expire(this.now());
    const image = response?.image;
    if (image === null || typeof image !== 'object') return undefined;
    const fields = image as Readonly<Record<string, unknown>>;
    const ref = this.matchingRef(fields);
    const found = ref === undefined ? undefined : this.pending.get(ref);
    if (ref === undefined || found === undefined) return undefined;
    this.pending.delete(ref);
    const size = Number(fields.size);
    return { value: found.value, bytes: Number.isFinite(size) && size > 0 ? size : undefined };
  }

  private matchingRef(image: Readonly<Record<string, unknown>>): string | undefined {
    const id = fieldAt(image, 'id');
    if (id !== undefined && this.pending.has(id)) return id;
    // Runtimes whose pull reference is a repo digest rather than the image id.
    const digests = image.repo_digests;
    if (Array.isArray(digests)) {
      for (const digest of digests) if (typeof digest === 'string' && this.pending.has(digest)) return digest;
    }
    return undefined;
  }

  private expire(now: number): void {
    for (const [ref, { at }] of this.pending) {
      // Insertion order is time order, so the first fresh entry ends the sweep.
      if (now - at < PENDING_TTL_MS) return;
      this.pending.delete(ref);
    }
  }
}
