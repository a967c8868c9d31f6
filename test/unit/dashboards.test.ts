import * as fs from 'node:fs';
import * as path from 'node:path';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { parse as parseYaml } from 'yaml';
import { App } from '../../src/app';
import { builtinTypes } from '../../src/commands/builtin-types';
import { validateProxyConfig } from '../../src/config/schema';
import '../../src/interceptors/metrics';
import { silentLogger } from '../../src/log';
import { methodTable } from '../../src/chain/method-table';
import { makeTempDir } from '../support/proxy-harness';

const ROOT = path.resolve(__dirname, '..', '..');
const DASHBOARD = path.join(ROOT, 'deploy', 'grafana', 'cri-proxy-dashboard.json');
const ALERTS = path.join(ROOT, 'deploy', 'prometheus', 'cri-proxy-alerts.yaml');

/** Series Prometheus writes itself for every scrape target, the proxy's included. */
const PROMETHEUS_OWN = new Set(['up']);

// Words that are never metric names: binary/set operators, modifiers and literals.
const KEYWORDS = new Set(['and', 'or', 'unless', 'offset', 'bool', 'inf', 'nan', 'atan2', 'start', 'end']);
// Aggregations may put `by (...)` between their name and their `(`.
const AGGREGATIONS = new Set([
  'sum',
  'min',
  'max',
  'avg',
  'group',
  'stddev',
  'stdvar',
  'count',
  'count_values',
  'bottomk',
  'topk',
  'quantile',
  'limitk',
  'limit_ratio',
]);
// Followed by a parenthesised list of label names, not of expressions.
const LABEL_LISTS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);

/** Index just past the bracket closing the one at `start`, skipping strings inside. */
function skipBalanced(expr: string, start: number, open: string, close: string): number {
  let depth = 0;
  for (let i = start; i < expr.length; i++) {
    const c = expr[i] as string;
    if (c === '"' || c === "'" || c === '`') i = skipString(expr, i) - 1;
    else if (c === open) depth++;
    else if (c === close && --depth === 0) return i + 1;
  }
  throw new Error(`unbalanced ${open} in: ${expr}`);
}

function skipString(expr: string, start: number): number {
  const quote = expr[start];
  for (let i = start + 1; i < expr.length; i++) {
    if (expr[i] === '\\' && quote !== '`') i++;
    else if (expr[i] === quote) return i + 1;
  }
  throw new Error(`unterminated string in: ${expr}`);
}

/** Metric names a PromQL expression reads: identifiers that are not functions, keywords or label names. */
function metricNames(expr: string): string[] {
  const names = new Set<string>();
  let i = 0;
  while (i < expr.length) {
    const c = expr[i] as string;
    if (c === '"' || c === "'" || c === '`') i = skipString(expr, i);
    else if (c === '{')
      i = skipBalanced(expr, i, '{', '}'); // label matchers
    else if (c === '[')
      i = skipBalanced(expr, i, '[', ']'); // ranges, subqueries
    else if (c === '#') i = expr.includes('\n', i) ? expr.indexOf('\n', i) : expr.length;
    else if (c === '$')
      i += /^\$(\{[^}]*\}|\w+)/.exec(expr.slice(i))?.[0].length ?? 1; // Grafana variables
    else if (/[0-9.]/.test(c))
      i += /^[0-9.]+(e[+-]?[0-9]+)?[a-z]*/i.exec(expr.slice(i))?.[0].length ?? 1; // numbers, durations
    else if (/[A-Za-z_:]/.test(c)) {
      const word = /^[A-Za-z_:][A-Za-z0-9_:]*/.exec(expr.slice(i))?.[0] ?? c;
      i += word.length;
      const after = /^\s*/.exec(expr.slice(i))?.[0].length ?? 0;
      const nextChar = expr[i + after];
      if (LABEL_LISTS.has(word)) {
        if (nextChar === '(') i = skipBalanced(expr, i + after, '(', ')');
      } else if (!KEYWORDS.has(word) && !AGGREGATIONS.has(word) && nextChar !== '(') names.add(word);
    } else i++;
  }
  return [...names];
}

/** Every PromQL expression of a dashboard: panel targets, and the selectors of `label_values` variables. */
function dashboardExpressions(dashboard: unknown): string[] {
  const found: string[] = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(walk);
    else if (node !== null && typeof node === 'object') {
      for (const [key, value] of Object.entries(node)) {
        if (key === 'expr' && typeof value === 'string') found.push(value);
        else if (key === 'definition' && typeof value === 'string') {
          const m = /^label_values\(\s*(?:(.+),)?\s*\w+\s*\)$/.exec(value.trim());
          if (m?.[1] !== undefined) found.push(m[1]);
        } else walk(value);
      }
    }
  };
  walk(dashboard);
  return found;
}

interface RuleFile {
  readonly groups: readonly { readonly name: string; readonly rules: readonly { readonly alert?: string; readonly expr: string }[] }[];
}

function alertExpressions(rules: RuleFile): string[] {
  return rules.groups.flatMap((g) => g.rules.map((r) => r.expr));
}

/** Names in `exprs` that `exported` lacks, with the expression they came from. */
function unknownNames(exprs: readonly string[], exported: ReadonlySet<string>): string[] {
  return exprs.flatMap((e) =>
    metricNames(e)
      .filter((n) => !exported.has(n) && !PROMETHEUS_OWN.has(n))
      .map((n) => `${n} in ${e}`),
  );
}

/** What a running proxy with a metrics interceptor exports, as series names (histograms expanded). */
async function exportedNames(): Promise<Set<string>> {
  const dir = makeTempDir();
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const result = validateProxyConfig(
    {
      listen: `unix://${path.join(dir, 'proxy.sock')}`,
      http: { listen: '' },
      backends: [{ name: 'containerd', endpoint: `unix://${path.join(dir, 'runtime.sock')}` }],
      interceptors: [{ name: 'metrics', type: 'metrics' }],
    },
    builtinTypes(),
  );
  if (!result.ok) throw new Error(JSON.stringify(result.issues));
  const app = await App.start(result.config, { log: silentLogger, registry });
  try {
    const names = new Set<string>();
    for (const metric of await registry.getMetricsAsJSON()) {
      // The typings declare a numeric enum; at run time the type is the exposition word ('histogram', ...).
      const type = String(metric.type);
      const suffixes = type === 'histogram' ? ['_bucket', '_sum', '_count'] : type === 'summary' ? ['', '_sum', '_count'] : [''];
      for (const suffix of suffixes) names.add(metric.name + suffix);
    }
    return names;
  } finally {
    await app.stop(0);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('PromQL metric name extraction', () => {
  test.each([
    ['sum by (le, method) (rate(x_bucket{code!="OK", method=~"a|b"}[$__rate_interval]))', ['x_bucket']],
    ['a / ignoring(phase) group_left b', ['a', 'b']],
    [
      'histogram_quantile(0.9, sum by (instance, le) (rate(h_bucket[30m]))) > 60 and on (instance) sum without (job) (c) >= 5',
      ['h_bucket', 'c'],
    ],
    ['time() - max by (instance) (ts{instance=~"$instance"}) offset 5m', ['ts']],
    ['up{job="cri-proxy"} == 0 or absent(up{job="cri-proxy"})', ['up']],
    ['rate(x[5m:1m]) * 1e3 > bool 0.5', ['x']],
    ['sum(rate(s{label="has } and ( inside"}[1m])) by (method)', ['s']],
  ])('%s', (expr, names) => {
    expect(metricNames(expr)).toEqual(names);
  });
});

describe('dashboard and alert rules', () => {
  let exported: Set<string>;
  const dashboard: unknown = JSON.parse(fs.readFileSync(DASHBOARD, 'utf8'));
  const rules = parseYaml(fs.readFileSync(ALERTS, 'utf8')) as RuleFile;

  beforeAll(async () => {
    exported = await exportedNames();
  });

  test('the registry really holds the proxy’s metrics (the check below is not vacuous)', () => {
    for (const name of [
      'cri_proxy_calls_total',
      'cri_proxy_call_duration_seconds_bucket',
      'cri_proxy_backend_up',
      'cri_proxy_interceptor_errors_total',
      'cri_proxy_pod_start_duration_seconds_count',
      'process_cpu_seconds_total',
    ]) {
      expect(exported).toContain(name);
    }
  });

  test('every dashboard expression names only metrics the proxy exports', () => {
    const exprs = dashboardExpressions(dashboard);
    expect(exprs.length).toBeGreaterThanOrEqual(20);
    expect(unknownNames(exprs, exported)).toEqual([]);
  });

  test('every alert expression names only metrics the proxy exports', () => {
    const exprs = alertExpressions(rules);
    expect(rules.groups.flatMap((g) => g.rules.map((r) => r.alert))).toEqual([
      'CriProxyNotScraped',
      'CriProxyBackendDown',
      'CriProxyInterceptorErrors',
      'CriProxyMutatingCallErrorsHigh',
      'CriProxyPodStartSlow',
      'CriProxyOverheadHigh',
    ]);
    expect(unknownNames(exprs, exported)).toEqual([]);
  });

  test('a misspelled or invented metric is caught', () => {
    const broken = { panels: [{ targets: [{ expr: 'sum(rate(cri_proxy_bogus_total[5m]))' }] }] };
    expect(unknownNames(dashboardExpressions(broken), exported)).toEqual(['cri_proxy_bogus_total in sum(rate(cri_proxy_bogus_total[5m]))']);
    const typo = { groups: [{ name: 'g', rules: [{ alert: 'A', expr: 'cri_proxy_backend_upp == 0' }] }] };
    expect(unknownNames(alertExpressions(typo), exported)).toHaveLength(1);
  });

  test('method names in matchers are CRI methods; the mutating-call alert covers only mutating ones', () => {
    const known = new Map(methodTable.map((m) => [m.name, m]));
    const exprs = [...dashboardExpressions(dashboard), ...alertExpressions(rules)];
    for (const expr of exprs) {
      for (const m of expr.matchAll(/method=~?"([^"]*)"/g)) {
        for (const name of (m[1] ?? '').split('|')) expect(known.has(name) ? name : `unknown method ${name}`).toBe(name);
      }
    }
    const alert = rules.groups.flatMap((g) => g.rules).find((r) => r.alert === 'CriProxyMutatingCallErrorsHigh');
    const methods = [...(alert?.expr ?? '').matchAll(/method=~"([^"]*)"/g)].flatMap((m) => (m[1] ?? '').split('|'));
    expect(methods.length).toBeGreaterThan(0);
    expect(methods.filter((name) => known.get(name)?.mutating !== true)).toEqual([]);
  });
});
