/** How `cri-proxy pods` prints pod starts: a table with a compact text waterfall per pod start. */
import { formatDuration } from '../observability/duration';
import type { PodStartPart } from '../observability/pod-start-store';
import type { PodStartsAnswer, PodStartView } from '../observability/pod-starts-api';

/** Width of the text waterfall, in characters. */
export const WATERFALL_WIDTH = 32;

/** One character per part; kubelet's time between calls is a dot. */
const PART_CHAR: Readonly<Record<PodStartPart, string>> = { sandbox: 'S', pull: 'P', create: 'C', start: 'R', kubelet: '.' };

export const WATERFALL_LEGEND =
  'waterfall: S sandbox, P image pull, C create, R start, . kubelet between calls (each row: its own start to end)';

/**
 * Each character stands for an equal slice of the pod start and shows the part that took most of that slice;
 * any part that took at least a slice somewhere shows at least once.
 */
export function textWaterfall(start: PodStartView, width = WATERFALL_WIDTH): string {
  const total = start.totalMs;
  if (!(total > 0)) return PART_CHAR.sandbox.padEnd(width, ' ');
  const spans = [
    ...start.phases.map((p) => ({ part: p.phase, from: p.offsetMs, to: p.offsetMs + p.durationMs })),
    ...start.gaps.map((g) => ({ part: 'kubelet' as const, from: g.offsetMs, to: g.offsetMs + g.durationMs })),
  ];
  const slice = total / width;
  let out = '';
  for (let i = 0; i < width; i++) {
    const from = i * slice;
    const to = from + slice;
    const time = new Map<PodStartPart, number>();
    for (const s of spans) {
      const overlap = Math.min(to, s.to) - Math.max(from, s.from);
      if (overlap > 0) time.set(s.part, (time.get(s.part) ?? 0) + overlap);
    }
    let best: PodStartPart = 'kubelet';
    let most = 0;
    for (const [part, ms] of time) if (ms > most) [best, most] = [part, ms];
    out += PART_CHAR[best];
  }
  return out;
}

const HEADER = ['NAMESPACE', 'POD', 'TOTAL', 'LONGEST', 'WATERFALL', 'RESULT', 'FINISHED'] as const;

function cells(start: PodStartView): string[] {
  const share = start.totalMs > 0 ? Math.round((start.totals[start.dominant] / start.totalMs) * 100) : 0;
  return [
    start.namespace ?? '-',
    start.name ?? start.uid,
    formatDuration(start.totalMs),
    `${start.dominant} ${share}%`,
    textWaterfall(start),
    start.status === 'ok' ? 'started' : `failed ${start.code}`,
    new Date(start.endedAt).toLocaleTimeString('en-GB', { hour12: false }),
  ];
}

/** Column widths that fit `starts` (the header at least). */
export function columnWidths(starts: readonly PodStartView[]): number[] {
  return HEADER.map((h, i) => Math.max(h.length, ...starts.map((s) => (cells(s)[i] ?? '').length)));
}

/** Widths for `--watch`, where later rows are not known yet: roomy, and a longer value just widens its line. */
export const WATCH_WIDTHS: readonly number[] = [16, 36, 10, 13, WATERFALL_WIDTH, 12, 8];

function line(values: readonly string[], widths: readonly number[]): string {
  return values
    .map((v, i) => (i === values.length - 1 ? v : v.padEnd(widths[i] ?? 0)))
    .join('  ')
    .trimEnd();
}

export function headerLine(widths: readonly number[]): string {
  return `${line(HEADER, widths)}\n`;
}

/** A pod start's row, and for a failed one the error on the line below. */
export function rowLines(start: PodStartView, widths: readonly number[]): string {
  const row = `${line(cells(start), widths)}\n`;
  if (start.status === 'ok' || start.message === undefined) return row;
  const message = start.message.length > 160 ? `${start.message.slice(0, 159)}…` : start.message;
  return `${row}  └ ${start.code}: ${message}\n`;
}

export function lastHourLine(answer: PodStartsAnswer): string {
  const h = answer.lastHour;
  if (h.count === 0 || h.p50Ms === undefined || h.p90Ms === undefined || h.p99Ms === undefined) {
    return 'node, last hour: no pod started\n';
  }
  const starts = `${h.count} pod start${h.count === 1 ? '' : 's'}`;
  return `node, last hour: p50 ${formatDuration(h.p50Ms)} · p90 ${formatDuration(h.p90Ms)} · p99 ${formatDuration(h.p99Ms)} (${starts})\n`;
}

/** The whole listing of one answer. */
export function podStartsTable(answer: PodStartsAnswer): string {
  const starts = answer.podStarts;
  const summary = `${lastHourLine(answer)}showing ${starts.length} of ${answer.matched} pod start${answer.matched === 1 ? '' : 's'}, ${answer.sort === 'slowest' ? 'slowest' : 'newest'} first\n`;
  if (starts.length === 0) return `no pod starts match\n${summary}`;
  const widths = columnWidths(starts);
  return `${headerLine(widths)}${starts.map((s) => rowLines(s, widths)).join('')}\n${WATERFALL_LEGEND}\n${summary}`;
}
