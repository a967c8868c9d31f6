import { podStartsTable, textWaterfall, WATERFALL_WIDTH } from '../../src/commands/pods-table';
import type { PodStartsAnswer, PodStartView } from '../../src/observability/pod-starts-api';

function view(extra: Partial<PodStartView> = {}): PodStartView {
  return {
    seq: 1,
    uid: 'u1',
    name: 'web-1',
    namespace: 'shop',
    startedAt: '2025-01-31T12:00:00.000Z',
    endedAt: '2025-01-31T12:00:32.000Z',
    totalMs: 32_000,
    status: 'ok',
    code: 'OK',
    containers: 1,
    dominant: 'pull',
    totals: { sandbox: 1000, pull: 28_000, create: 1000, start: 1000, kubelet: 1000 },
    phases: [
      { phase: 'sandbox', offsetMs: 0, durationMs: 1000, code: 'OK' },
      { phase: 'pull', offsetMs: 2000, durationMs: 28_000, image: 'nginx:1.27', code: 'OK' },
      { phase: 'create', offsetMs: 30_000, durationMs: 1000, container: 'app', code: 'OK' },
      { phase: 'start', offsetMs: 31_000, durationMs: 1000, container: 'app', code: 'OK' },
    ],
    gaps: [{ offsetMs: 1000, durationMs: 1000 }],
    phasesDropped: 0,
    ...extra,
  };
}

describe('cri-proxy pods: the text waterfall and table', () => {
  test('each character is an equal slice of the start, showing the part that took most of it', () => {
    expect(textWaterfall(view())).toBe(`S.${'P'.repeat(28)}CR`);
    expect(textWaterfall(view())).toHaveLength(WATERFALL_WIDTH);
  });

  test('a failed start shows its code in the row and its message below', () => {
    const answer: PodStartsAnswer = {
      generatedAt: '2025-01-31T12:01:00.000Z',
      sort: 'slowest',
      keep: 500,
      keepSlowest: 50,
      matched: 1,
      lastHour: { count: 0 },
      namespaces: ['shop'],
      podStarts: [view({ status: 'failed', code: 'DEADLINE_EXCEEDED', message: 'context deadline exceeded' })],
    };
    const lines = podStartsTable(answer).split('\n');
    expect(lines[0]).toMatch(/^NAMESPACE +POD +TOTAL +LONGEST +WATERFALL +RESULT +FINISHED$/);
    expect(lines[1]).toMatch(/^shop +web-1 +32\.0 s +pull 88% +S\.P+CR +failed DEADLINE_EXCEEDED +\d\d:\d\d:\d\d$/);
    expect(lines[2]).toBe('  └ DEADLINE_EXCEEDED: context deadline exceeded');
    expect(lines).toContain('showing 1 of 1 pod start, slowest first');
  });
});
