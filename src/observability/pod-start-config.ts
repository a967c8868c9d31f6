import { z } from 'zod';
import { MAX_INT32 } from '../values';

/** The `podStart` settings of both the tracing and the metrics interceptor: one schema, one set of limits. */
export const podStartConfigSchema = z
  .strictObject({
    enabled: z.boolean().default(true),
    /** Quiet period after a StartContainer before the pod counts as started. */
    settleMs: z.int().min(0).max(600_000).default(3000),
    /** Pods followed at once. */
    maxPods: z.int().min(1).max(1_000_000).default(1000),
    /** A pod with no new phase for this long is forgotten. */
    ttlMs: z
      .int()
      .min(1000)
      .max(MAX_INT32)
      .default(10 * 60 * 1000),
  })
  .prefault({});
export type PodStartConfig = z.output<typeof podStartConfigSchema>;
