import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { FastCounter, FastGauge, FastHistogram } from '../../src/metrics/fast';

const labelNames = ['method', 'code'] as const;

/** A histogram sample's `le`, which prom-client's typings leave out of the labels. */
const leOf = (labels: object): unknown => ('le' in labels ? labels.le : undefined);

/** The exposition text of one metric, with its name swapped so two registries can be compared line by line. */
async function rendered(registry: Registry, name: string): Promise<string[]> {
  const text = await registry.getSingleMetricAsString(name);
  return text
    .split('\n')
    .map((line) => line.replaceAll(name, 'metric'))
    .sort();
}

describe('fast metrics render exactly as prom-client’s own', () => {
  test('histogram: cumulative buckets, +Inf, sum and count per series', async () => {
    const fast = new Registry();
    const plain = new Registry();
    const buckets = [0.001, 0.01, 0.1, 1];
    const f = new FastHistogram({ name: 'fast_h', help: 'h', labelNames, buckets, registers: [fast] });
    const p = new Histogram({ name: 'plain_h', help: 'h', labelNames, buckets, registers: [plain] });
    const observations: [string, string, number][] = [
      ['Version', 'OK', 0.0005],
      ['Version', 'OK', 0.001],
      ['Version', 'OK', 0.05],
      ['Version', 'NOT_FOUND', 5],
      ['Status', 'OK', 0.2],
    ];
    for (const [method, code, value] of observations) {
      f.cell(method, code).observe(value);
      p.observe({ method, code }, value);
    }
    // A series never observed is not exported (as with prom-client).
    f.cell('ListContainers', 'OK');
    expect(await rendered(fast, 'fast_h')).toEqual(await rendered(plain, 'plain_h'));
    const json = await f.get();
    expect(json.values.find((v) => v.labels.method === 'Version' && v.labels.code === 'OK' && leOf(v.labels) === 0.01)?.value).toBe(2);

    fast.resetMetrics();
    plain.resetMetrics();
    expect(await rendered(fast, 'fast_h')).toEqual(await rendered(plain, 'plain_h'));
    f.cell('Version', 'OK').observe(0.02);
    expect((await f.get()).values.find((v) => leOf(v.labels) === '+Inf')?.value).toBe(1);
  });

  test('counter and gauge', async () => {
    const fast = new Registry();
    const plain = new Registry();
    const fc = new FastCounter({ name: 'fast_c', help: 'c', labelNames, registers: [fast] });
    const pc = new Counter({ name: 'plain_c', help: 'c', labelNames, registers: [plain] });
    const fg = new FastGauge({ name: 'fast_g', help: 'g', labelNames, registers: [fast] });
    const pg = new Gauge({ name: 'plain_g', help: 'g', labelNames, registers: [plain] });
    fc.cell('Version', 'OK').inc();
    fc.cell('Version', 'OK').inc(2);
    pc.inc({ method: 'Version', code: 'OK' }, 3);
    const inFlight = fg.cell('Version', 'OK');
    inFlight.inc();
    inFlight.dec();
    pg.inc({ method: 'Version', code: 'OK' });
    pg.dec({ method: 'Version', code: 'OK' });
    expect(await rendered(fast, 'fast_c')).toEqual(await rendered(plain, 'plain_c'));
    // Back at 0 but used: the series stays, reading 0.
    expect(await rendered(fast, 'fast_g')).toEqual(await rendered(plain, 'plain_g'));
    expect(() => fc.cell('Version')).toThrow(/expected 2 label values/);
  });
});
