/**
 * Where a process's CPU went, from a V8 `.cpuprofile` (node --cpu-prof): self time grouped into node's HTTP/2
 * internals, other node internals, native code, GC and our own files, plus the heaviest functions.
 * Also runnable on its own: `node dist/bench/profile-summary.js FILE.cpuprofile`.
 */
import { readFileSync } from 'node:fs';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface Bucket {
  readonly name: string;
  readonly ms: number;
  /** Share of busy time (everything but idle). */
  readonly percent: number;
}

export interface ProfileSummary {
  readonly busyMs: number;
  readonly idleMs: number;
  readonly groups: readonly Bucket[];
  readonly selfTop: readonly Bucket[];
  /** Our functions by inclusive time (themselves plus what they call). */
  readonly ownInclusiveTop: readonly Bucket[];
}

function isProfile(value: unknown): value is CpuProfile {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return Array.isArray(v.nodes) && Array.isArray(v.samples) && Array.isArray(v.timeDeltas);
}

/** `file:///…/dist/src/proxy/exchange.js` → `src/proxy/exchange.ts`; undefined when not ours. */
function ownFile(url: string): string | undefined {
  const at = url.indexOf('/dist/src/');
  if (at < 0 || url.includes('node_modules')) return undefined;
  return url.slice(at + '/dist/'.length).replace(/\.js$/, '.ts');
}

/** The group a function's self time counts towards. */
export function groupOf(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (url === '') {
    if (functionName === '(garbage collector)') return 'GC';
    if (functionName === '(idle)') return 'idle';
    // Outside any JS frame: libuv, socket reads and writes, nghttp2 parsing before it calls back into JS.
    if (functionName === '(program)') return 'native: (program) - libuv, nghttp2, sockets';
    return 'native: V8 builtins and C++ bindings called from JS';
  }
  const own = ownFile(url);
  if (own !== undefined) return `ours: ${own}`;
  if (url.startsWith('node:internal/http2')) return 'node: http2 (JS side)';
  if (/^node:(internal\/)?(streams|stream)/.test(url)) return 'node: streams';
  if (url.startsWith('node:events') || url.startsWith('node:internal/event_target')) return 'node: events';
  if (url.startsWith('node:internal/timers') || url.startsWith('node:internal/process/task_queues')) return 'node: timers and microtasks';
  if (url.startsWith('node:'))
    return `node: ${
      url
        .slice('node:'.length)
        .replace(/^internal\//, '')
        .split('/')[0] ?? 'other'
    }`;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg?.[1] !== undefined) return `package: ${pkg[1]}`;
  return 'other JS';
}

function label(frame: CallFrame): string {
  const where = frame.url === '' ? '' : ` ${ownFile(frame.url) ?? frame.url.replace(/^node:/, '')}:${frame.lineNumber + 1}`;
  return `${frame.functionName === '' ? '(anonymous)' : frame.functionName}${where}`;
}

function top(map: ReadonlyMap<string, number>, busyMs: number, n: number): Bucket[] {
  return [...map.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([name, ms]) => ({ name, ms, percent: busyMs > 0 ? (100 * ms) / busyMs : 0 }));
}

function add(map: Map<string, number>, key: string, ms: number): void {
  map.set(key, (map.get(key) ?? 0) + ms);
}

export function summarizeProfile(raw: unknown, topN = 25): ProfileSummary {
  if (!isProfile(raw)) throw new Error('not a V8 .cpuprofile (nodes, samples and timeDeltas expected)');
  const byId = new Map(raw.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of raw.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, number>();
  const groups = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let idleMs = 0;
  let busyMs = 0;
  raw.samples.forEach((id, i) => {
    // The delta before the next sample is the time this one stood for.
    const ms = (raw.timeDeltas[i + 1] ?? 0) / 1000;
    const node = byId.get(id);
    if (!node) return;
    const group = groupOf(node.callFrame);
    if (group === 'idle') {
      idleMs += ms;
      return;
    }
    busyMs += ms;
    add(groups, group, ms);
    add(self, label(node.callFrame), ms);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const frame = byId.get(cur)?.callFrame;
      if (frame === undefined || ownFile(frame.url) === undefined) continue;
      const key = label(frame);
      if (!seen.has(key)) {
        seen.add(key);
        add(inclusive, key, ms);
      }
    }
  });
  return {
    busyMs,
    idleMs,
    groups: top(groups, busyMs, 100),
    selfTop: top(self, busyMs, topN),
    ownInclusiveTop: top(inclusive, busyMs, 15),
  };
}

function lines(buckets: readonly Bucket[]): string {
  return buckets.map((b) => `  ${b.ms.toFixed(0).padStart(7)} ms ${b.percent.toFixed(1).padStart(5)}%  ${b.name}`).join('\n');
}

export function formatProfileSummary(s: ProfileSummary): string {
  return [
    `busy ${s.busyMs.toFixed(0)} ms, idle ${s.idleMs.toFixed(0)} ms; percentages are of busy time`,
    'self time by group:',
    lines(s.groups),
    'heaviest functions (self time):',
    lines(s.selfTop),
    'our functions by inclusive time (with everything they call):',
    lines(s.ownInclusiveTop),
  ].join('\n');
}

if (require.main === module) {
  const file = process.argv[2];
  if (file === undefined) {
    process.stderr.write('usage: node dist/bench/profile-summary.js FILE.cpuprofile\n');
    process.exit(2);
  }
  process.stdout.write(`${formatProfileSummary(summarizeProfile(JSON.parse(readFileSync(file, 'utf8')) as unknown))}\n`);
}
