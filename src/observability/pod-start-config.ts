import { z } from 'zod';
import { MAX_INT32 } from '../values';

/** Settings that moved to the top-level `podStarts` group: named with a pointer there instead of "unknown key". */
const movedTo = (key: string) =>
  z.never({ error: `moved to the top-level podStarts.${key}: pod starts are followed once for the whole proxy` }).optional();

/** The `podStart` settings of both the tracing and the metrics interceptor: whether they report pod starts. */
export const podStartConfigSchema = z
  .strictObject({
    enabled: z.boolean().default(true),
    settleMs: movedTo('settleMs'),
    maxPods: movedTo('maxStarting'),
    ttlMs: movedTo('ttlMs'),
  })
  .prefault({});

export const DEFAULT_KEEP = 500;
export const DEFAULT_KEEP_SLOWEST = 50;

/** The proxy's top-level `podStarts` group: how pod starts are followed, and how many the admin page keeps. */
export const podStartsConfigSchema = z
  .strictObject({
    /** Keep pod starts for `/pods`, `/api/pods` and `cri-proxy pods`. */
    enabled: z.boolean().default(true),
    /** The last pod starts kept. */
    keep: z.int().min(1).max(100_000).default(DEFAULT_KEEP),
    /** The slowest pod starts of the last 24 hours kept besides. */
    keepSlowest: z.int().min(0).max(10_000).default(DEFAULT_KEEP_SLOWEST),
    /** Quiet period after a StartContainer before the pod counts as started. */
    settleMs: z.int().min(0).max(600_000).default(3000),
    /** Pods followed at once while they start. */
    maxStarting: z.int().min(1).max(1_000_000).default(1000),
    /** A starting pod with no new phase for this long is forgotten. */
    ttlMs: z
      .int()
      .min(1000)
      .max(MAX_INT32)
      .default(10 * 60 * 1000),
  })
  .prefault({});
export type PodStartsConfig = z.output<typeof podStartsConfigSchema>;
