/** Pod-start bursts → medians over rounds per row, each ratio pairing a row's burst with direct's of the same round. */
import type { BurstRecord } from './pod-burst';
import { DIRECT } from './rows';
import { median, round } from './stats';

export interface BurstSummary {
  readonly pods: number;
  readonly rounds: number;
  /** Pods that did not start, over every round. */
  readonly failed: number;
  readonly wallMs: number;
  readonly wallVsDirect: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly p99VsDirect: number;
  readonly removeMs: number;
  readonly firstError?: string;
}

export function summarizeBursts(records: readonly BurstRecord[]): Record<string, BurstSummary> {
  const directOf = new Map(records.filter((r) => r.row === DIRECT).map((r) => [r.round, r]));
  const rows = [...new Set(records.map((r) => r.row))];
  return Object.fromEntries(
    rows.map((row): [string, BurstSummary] => {
      const mine = records.filter((r) => r.row === row);
      const vs = (f: (r: BurstRecord) => number): number =>
        round(median(mine.map((r) => f(r) / f(directOf.get(r.round) ?? { ...r, wallMs: Number.NaN, p99Ms: Number.NaN }))), 3);
      const firstError = mine.find((r) => r.firstError !== undefined)?.firstError;
      return [
        row,
        {
          pods: mine[0]?.pods ?? 0,
          rounds: mine.length,
          failed: mine.reduce((sum, r) => sum + r.pods - r.started, 0),
          wallMs: round(median(mine.map((r) => r.wallMs)), 0),
          wallVsDirect: vs((r) => r.wallMs),
          p50Ms: round(median(mine.map((r) => r.p50Ms)), 0),
          p99Ms: round(median(mine.map((r) => r.p99Ms)), 0),
          p99VsDirect: vs((r) => r.p99Ms),
          removeMs: round(median(mine.map((r) => r.removeMs)), 0),
          ...(firstError === undefined ? {} : { firstError }),
        },
      ];
    }),
  );
}
