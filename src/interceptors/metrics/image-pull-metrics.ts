import type { Histogram, Registry } from 'prom-client';
import { GrpcStatus } from '../../errors';
import type { CallContext } from '../../chain/types';
import { GRPC_CODE_COUNT, ensureHistogram, grpcCodeName } from '../../metrics/registry';
import { METRIC } from '../../metrics/names';
import { fieldAt } from '../../messages/field-at';

const PULL_SECONDS_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200];
const PULL_BYTES_BUCKETS = [1e6, 5e6, 1e7, 2.5e7, 5e7, 1e8, 2.5e8, 5e8, 1e9, 2.5e9, 5e9, 1e10];

/** How long a pulled image waits for the runtime to report its size, and how many may wait at once. */
const PENDING_TTL_MS = 120_000;
const PENDING_MAX = 128;

/**
 * Image pull durations, and sizes where the runtime reports them. PullImageResponse carries only the image
 * reference, and the proxy never makes calls of its own on the hot path; but kubelet asks ImageStatus right
 * after a successful pull (for its "Image size" event), so the size is taken from that answer when its
 * image id matches a reference pulled moments ago. ImageStatus answers are decoded only while such a pull
 * is pending, so the common ImageStatus call stays undecoded.
 */
export class ImagePullMetrics {
  private readonly duration: Histogram<'code'>;
  private readonly bytes: Histogram;
  private readonly byCode: (Histogram.Internal<'code'> | undefined)[] = new Array<undefined>(GRPC_CODE_COUNT);
  /** image_ref of recent successful pulls → when the pull finished (ms). */
  private readonly pending = new Map<string, number>();

  constructor(registry: Registry) {
    this.duration = ensureHistogram(registry, {
      name: METRIC.imagePullDurationSeconds,
      help: 'Duration of PullImage calls through the proxy as the client sees them, by gRPC code',
      labelNames: ['code'] as const,
      buckets: PULL_SECONDS_BUCKETS,
    });
    this.bytes = ensureHistogram(registry, {
      name: METRIC.imagePullBytes,
      help: 'Size of freshly pulled images as the runtime reports it in the ImageStatus that follows a pull',
      labelNames: [] as const,
      buckets: PULL_BYTES_BUCKETS,
    });
  }

  /** After a PullImage call: its duration by code, and its reference remembered for the size. */
  onPull(ctx: CallContext, code: number, seconds: number): void {
    let child = this.byCode[code];
    if (child === undefined) {
      child = this.duration.labels(grpcCodeName(code));
      if (code >= 0 && code < GRPC_CODE_COUNT) this.byCode[code] = child;
    }
    child.observe(seconds);
    if (code !== GrpcStatus.OK) return;
    const ref = fieldAt(ctx.response(), 'image_ref');
    if (ref === undefined || ref === '') return;
    const now = Date.now();
    this.expire(now);
    if (this.pending.size >= PENDING_MAX) {
      const oldest = this.pending.keys().next();
      if (oldest.done !== true) this.pending.delete(oldest.value);
    }
    this.pending.set(ref, now);
  }

  /** True while a pulled image waits for its size: only then is ImageStatus worth decoding. */
  get waiting(): boolean {
    return this.pending.size > 0;
  }

  /** After an OK ImageStatus call while `waiting`. */
  onImageStatus(ctx: CallContext): void {
    this.expire(Date.now());
    const response = ctx.response();
    const image = response?.image;
    if (image === null || typeof image !== 'object') return;
    const fields = image as Readonly<Record<string, unknown>>;
    const ref = this.matchingRef(fields);
    if (ref === undefined) return;
    this.pending.delete(ref);
    const size = Number(fields.size);
    if (Number.isFinite(size) && size > 0) this.bytes.observe(size);
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
    for (const [ref, at] of this.pending) {
      // Insertion order is time order, so the first fresh entry ends the sweep.
      if (now - at < PENDING_TTL_MS) return;
      this.pending.delete(ref);
    }
  }
}
