import type { Registry } from 'prom-client';

export type Labels = Readonly<Record<string, string>>;

/** Histogram samples carry their full name (`x_bucket`, `x_sum`, `x_count`); the base type does not declare it. */
function metricNameOf(v: object): string | undefined {
  return 'metricName' in v && typeof v.metricName === 'string' ? v.metricName : undefined;
}

/** The value of the one sample of `name` (+ histogram suffix) whose labels include `labels`. */
export async function sample(registry: Registry, name: string, labels: Labels = {}, suffix = ''): Promise<number | undefined> {
  const values = (await registry.getSingleMetric(name)?.get())?.values ?? [];
  const matches = values.filter(
    (v) => (metricNameOf(v) ?? name) === name + suffix && Object.entries(labels).every(([k, want]) => v.labels[k] === want),
  );
  if (matches.length > 1 && suffix !== '_bucket') throw new Error(`${name}${suffix}: ${matches.length} samples match`);
  return matches[0]?.value;
}
