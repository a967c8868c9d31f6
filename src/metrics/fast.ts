import { Counter, Gauge, Histogram } from 'prom-client';

/**
 * prom-client metrics whose hot path is a plain field update. prom-client builds, validates and hashes a
 * label object on every inc/observe (about 0.5-1 µs each); a call touches six series, on every kubelet call.
 * Here each label set is resolved once into a cell the caller keeps, and cells become samples only at scrape
 * time. The classes stay real prom-client metrics (registry, names, help, reuse checks all apply); their
 * label-object API still works and is exported alongside the cells.
 */

/** Label values by name, as prom-client's samples carry them. */
type LabelRecord<L extends string> = Partial<Record<L, string | number>>;

function labelRecord<L extends string>(names: readonly string[], values: readonly string[]): LabelRecord<L> {
  if (values.length !== names.length) throw new Error(`expected ${names.length} label values, got ${values.length}`);
  const out: Record<string, string> = {};
  names.forEach((name, i) => (out[name] = values[i] as string));
  return out as LabelRecord<L>;
}

/** One series of a counter or gauge. */
export class ValueCell<L extends string = string> {
  value = 0;
  /** A gauge series exists once used, even when back at 0 (in-flight returning to 0 must show 0). */
  touched = false;
  constructor(readonly labels: LabelRecord<L>) {}

  inc(by = 1): void {
    this.value += by;
    this.touched = true;
  }

  dec(by = 1): void {
    this.value -= by;
    this.touched = true;
  }
}

/** One series of a histogram: per-bucket counts (not cumulative), sum and count. */
export class HistogramCell<L extends string = string> {
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(
    readonly labels: LabelRecord<L>,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Array<number>(bounds.length + 1).fill(0);
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) return;
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > (bounds[i] as number)) i++;
    this.counts[i] = (this.counts[i] as number) + 1;
    this.sum += value;
    this.count++;
  }

  clear(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}

class CellMap<L extends string, C> {
  private readonly cells = new Map<string, C>();
  constructor(
    private readonly labelNames: readonly string[],
    private readonly make: (labels: LabelRecord<L>) => C,
  ) {}

  get(values: readonly string[]): C {
    const key = values.join('\u0000');
    let cell = this.cells.get(key);
    if (cell === undefined) {
      cell = this.make(labelRecord<L>(this.labelNames, values));
      this.cells.set(key, cell);
    }
    return cell;
  }

  values(): IterableIterator<C> {
    return this.cells.values();
  }
}

type Config<T> = T & { readonly labelNames: readonly string[] };

/** The cells of a counter or a gauge: what both add to prom-client's samples and clear on reset. */
class ValueCells<L extends string> extends CellMap<L, ValueCell<L>> {
  constructor(labelNames: readonly string[]) {
    super(labelNames, (labels) => new ValueCell<L>(labels));
  }

  /** A series exists once used, even at 0 (a counter pre-created at 0, an in-flight gauge back at 0). */
  appendTo<T extends { values: { labels: LabelRecord<L>; value: number }[] }>(data: T): T {
    const values = [...data.values];
    for (const cell of this.values()) if (cell.touched) values.push({ labels: cell.labels, value: cell.value });
    return { ...data, values };
  }

  clear(): void {
    for (const cell of this.values()) {
      cell.value = 0;
      cell.touched = false;
    }
  }
}

export class FastCounter<L extends string> extends Counter<L> {
  // Filled lazily: prom-client's constructor calls reset() before subclass fields exist.
  private store: ValueCells<L> | undefined;

  constructor(config: Config<ConstructorParameters<typeof Counter<L>>[0]>) {
    super(config);
    this.store = new ValueCells<L>(config.labelNames);
  }

  /** The series for these label values (in `labelNames` order); keep it and call `inc()` on it. */
  cell(...values: string[]): ValueCell<L> {
    return (this.store as ValueCells<L>).get(values);
  }

  override async get(): ReturnType<Counter<L>['get']> {
    const data = await super.get();
    return this.store?.appendTo(data) ?? data;
  }

  override reset(): void {
    super.reset();
    this.store?.clear();
  }
}

export class FastGauge<L extends string> extends Gauge<L> {
  private store: ValueCells<L> | undefined;

  constructor(config: Config<ConstructorParameters<typeof Gauge<L>>[0]>) {
    super(config);
    this.store = new ValueCells<L>(config.labelNames);
  }

  cell(...values: string[]): ValueCell<L> {
    return (this.store as ValueCells<L>).get(values);
  }

  override async get(): ReturnType<Gauge<L>['get']> {
    const data = await super.get();
    return this.store?.appendTo(data) ?? data;
  }

  override reset(): void {
    super.reset();
    this.store?.clear();
  }
}

/** A sample as prom-client's registry renders it: histogram samples carry their full name. */
interface RenderedSample<L extends string> {
  readonly labels: LabelRecord<L>;
  readonly sharedLabels: LabelRecord<L>;
  readonly value: number;
  readonly metricName: string;
}

/**
 * Exported from its cells only: the registry renders histograms through `getForPromString()` (and prom-client's
 * `get()` reads through it too), which this class replaces. So the label-object API (`observe(labels, v)`,
 * `labels()`, `startTimer()`) must not be used on it: such observations would not be exported.
 */
export class FastHistogram<L extends string> extends Histogram<L> {
  private store: CellMap<L, HistogramCell<L>> | undefined;
  private readonly bounds: readonly number[];
  private readonly metricName: string;
  private readonly helpText: string;

  constructor(config: Config<ConstructorParameters<typeof Histogram<L>>[0]> & { readonly buckets: readonly number[] }) {
    super(config);
    const bounds = [...config.buckets];
    this.bounds = bounds;
    this.metricName = config.name;
    this.helpText = config.help;
    this.store = new CellMap(config.labelNames, (labels) => new HistogramCell<L>(labels, bounds));
  }

  cell(...values: string[]): HistogramCell<L> {
    return (this.store as CellMap<L, HistogramCell<L>>).get(values);
  }

  getForPromString(): Promise<{ name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: RenderedSample<L>[] }> {
    const { metricName } = this;
    const bucket = `${metricName}_bucket`;
    const values: RenderedSample<L>[] = [];
    // Shaped as prom-client's own: `le` in fresh labels (Histogram.get() merges into them), the series' labels shared.
    const sample = (cell: HistogramCell<L>, le: number | string | undefined, value: number, name: string): void => {
      const labels = (le === undefined ? {} : { le }) as LabelRecord<L>;
      values.push({ labels, sharedLabels: cell.labels, value, metricName: name });
    };
    for (const cell of this.store?.values() ?? []) {
      if (cell.count === 0) continue;
      let cumulative = 0;
      this.bounds.forEach((le, i) => {
        cumulative += cell.counts[i] as number;
        sample(cell, le, cumulative, bucket);
      });
      sample(cell, '+Inf', cell.count, bucket);
      sample(cell, undefined, cell.sum, `${metricName}_sum`);
      sample(cell, undefined, cell.count, `${metricName}_count`);
    }
    return Promise.resolve({ name: metricName, help: this.helpText, type: 'histogram', aggregator: 'sum', values });
  }

  override reset(): void {
    super.reset();
    for (const cell of this.store?.values() ?? []) cell.clear();
  }
}
