import { performance } from 'node:perf_hooks';
import type { Instant } from '../chain/pod-start-records';

// One anchor pairs the two clocks, so every instant derived from hrtime lies on the same, consistent timeline
// (CallContext.startedAt is hrtime; spans need wall-clock times).
const anchorHr = process.hrtime.bigint();
const anchorEpochMs = performance.timeOrigin + performance.now();

/** The instant of an hrtime reading. */
export function instantAt(hrtime: bigint): Instant {
  return { epochMs: anchorEpochMs + Number(hrtime - anchorHr) / 1e6, hrtime };
}

/** Milliseconds from `start` to `end` (fractional, exact to the nanosecond reading). */
export function elapsedMs(start: Instant, end: Instant): number {
  return Number(end.hrtime - start.hrtime) / 1e6;
}
