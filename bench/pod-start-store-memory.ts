/**
 * What the pod start store holds in memory: `node --expose-gc dist/bench/pod-start-store-memory.js` fills a store
 * to its default bound (podStarts.keep + keepSlowest) with pod starts of a typical shape and of the largest shape
 * it keeps, and prints the heap each costs (docs/pod-starts.md quotes the figures).
 */
import { DEFAULT_KEEP, DEFAULT_KEEP_SLOWEST } from '../src/observability/pod-start-config';
import { MAX_KEPT_PHASES, MAX_MESSAGE, MAX_TEXT, PodStartStore } from '../src/observability/pod-start-store';
import type { PodStart, PodStartPhase, PodStartPhaseName } from '../src/observability/pod-start-tracker';

const gc = (globalThis as { gc?: () => void }).gc;

function phase(name: PodStartPhaseName, from: number, ms: number, text: (n: number) => string, i: number): PodStartPhase {
  const image = name === 'pull' || name === 'create' ? text(i) : undefined;
  return {
    phase: name,
    detail: name === 'sandbox' ? undefined : text(i + 1),
    image,
    start: { epochMs: from, hrtime: 0n },
    end: { epochMs: from + ms, hrtime: 0n },
    durationMs: ms,
    code: 0,
    message: undefined,
    links: [],
  };
}

/** A pod start with `containers` containers, one pull each when `pull`; strings from `text` (fresh per pod). */
function podStart(seq: number, containers: number, pull: boolean, text: (n: number) => string, failing: boolean): PodStart {
  const begin = Date.now() - 60_000 + seq;
  const phases: PodStartPhase[] = [phase('sandbox', begin, 800, text, 0)];
  for (let c = 0; c < containers; c++) {
    const at = begin + 1000 + c * 3000;
    if (pull) phases.push(phase('pull', at, 2000, text, c));
    phases.push(phase('create', at + 2000, 100, text, c));
    phases.push({
      ...phase('start', at + 2100, 100, text, c),
      ...(failing ? { code: 4, message: text(c + 7).padEnd(MAX_MESSAGE + 10, 'm') } : {}),
    });
  }
  const last = phases[phases.length - 1] as PodStartPhase;
  return {
    uid: text(100),
    name: text(101),
    namespace: text(102),
    sandboxId: text(103),
    runtimeHandler: 'runc',
    backend: 'containerd',
    start: { epochMs: begin, hrtime: 0n },
    end: last.end,
    totalMs: last.end.epochMs - begin,
    status: failing ? 'failed' : 'ok',
    code: failing ? 4 : 0,
    phases,
    phasesDropped: 0,
    phaseTotals: { sandbox: 800, pull: pull ? 2000 * containers : 0, create: 100 * containers, start: 100 * containers },
    containers,
  };
}

function heap(): number {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed;
}

function measure(label: string, make: (seq: number) => PodStart): void {
  const count = DEFAULT_KEEP + DEFAULT_KEEP_SLOWEST;
  // Built first and dropped: the tracker's records are not the store's to pay for, only what it keeps of them.
  const before = heap();
  const store = new PodStartStore({ keep: DEFAULT_KEEP, keepSlowest: DEFAULT_KEEP_SLOWEST });
  for (let i = 0; i < count * 4; i++) store.add(make(i));
  const after = heap();
  const perStart = (after - before) / store.size;
  process.stdout.write(
    `${label}: ${store.size} pod starts kept, ${Math.round(perStart)} bytes each, ${((after - before) / 1e6).toFixed(2)} MB in all\n`,
  );
}

function main(): void {
  if (gc === undefined) throw new Error('run with node --expose-gc');
  let n = 0;
  // Kubernetes-like names: a 20-character pod name, a 36-character uid, a 64-hex sandbox id, images of 40.
  const typical = (i: number): string => `${['web', 'api', 'job'][i % 3] ?? 'x'}-${(n++).toString(36).padStart(16, '0')}`.padEnd(36, 'x');
  const longest = (i: number): string => `${i}-${(n++).toString(36)}`.padEnd(MAX_TEXT + 50, 'y');
  measure('typical (2 containers, 1 pull each)', (seq) => podStart(seq, 2, true, typical, false));
  measure('one container, image present', (seq) => podStart(seq, 1, false, typical, false));
  measure(`largest kept (${MAX_KEPT_PHASES} phases, every string at its cap)`, (seq) => podStart(seq, 11, true, longest, true));
}

main();
