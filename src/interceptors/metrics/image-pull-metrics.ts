import type { Histogram, Registry } from 'prom-client';
import { GrpcStatus } from '../../errors';
import type { CallContext } from '../../chain/types';
import { GRPC_CODE_COUNT, ensureHistogram, grpcCodeName } from '../../metrics/registry';
import { METRIC } from '../../metrics/names';
import { PulledImageSizes } from '../../observability/pulled-image-sizes';

const PULL_SECONDS_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200];
const PULL_BYTES_BUCKETS = [1e6, 5e6, 1e7, 2.5e7, 5e7, 1e8, 2.5e8, 5e8, 1e9, 2.5e9, 5e9, 1e10];

/**
 * Image pull durations, and sizes where the runtime reports them (see PulledImageSizes: taken from the
 * ImageStatus kubelet sends right after a pull, read on the wire only while a pull waits for its size).
 */
export class ImagePullMetrics {
  private readonly duration: Histogram<'code'>;
  private readonly bytes: Histogram;
  private readonly byCode: (Histogram.Internal<'code'> | undefined)[] = new Array<undefined>(GRPC_CODE_COUNT);
  private readonly sizes = new PulledImageSizes<undefined>();

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
    if (code === GrpcStatus.OK) this.sizes.expect(ctx.responseBytes(), undefined);
  }

  /** True while a pulled image waits for its size: only then is ImageStatus worth reading. */
  get waiting(): boolean {
    return this.sizes.waiting;
  }

  /** After an OK ImageStatus call while `waiting`. */
  onImageStatus(ctx: CallContext): void {
    const bytes = this.sizes.match(ctx.responseBytes())?.bytes;
    if (bytes !== undefined) this.bytes.observe(bytes);
  }
}
