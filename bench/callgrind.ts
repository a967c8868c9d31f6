/**
 * Reading what valgrind's callgrind counted: the instruction total of a dump, and the instructions per function,
 * with V8's generated code named from the perf map node writes under `--perf-basic-prof` (callgrind itself only
 * sees addresses there).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

/** The instructions (Ir) a callgrind dump counted. */
export function dumpTotal(file: string): number {
  const match = /^(?:summary|totals):\s+(\d+)/m.exec(readFileSync(file, 'utf8'));
  if (match?.[1] === undefined) throw new Error(`${file}: no instruction total (not a callgrind dump?)`);
  return Number(match[1]);
}

interface CodeRange {
  readonly start: number;
  readonly size: number;
  readonly name: string;
}

/** /tmp/perf-PID.map: one `START SIZE NAME` line (hex) per piece of generated code. */
function readPerfMap(file: string): CodeRange[] {
  const ranges: CodeRange[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const match = /^([0-9a-f]+) ([0-9a-f]+) (.*)$/.exec(line);
    if (match === null) continue;
    ranges.push({ start: parseInt(match[1] as string, 16), size: parseInt(match[2] as string, 16), name: match[3] as string });
  }
  return ranges.sort((a, b) => a.start - b.start);
}

function nameAt(ranges: readonly CodeRange[], address: number): string | undefined {
  let lo = 0;
  let hi = ranges.length - 1;
  let best: CodeRange | undefined;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const range = ranges[mid] as CodeRange;
    if (range.start <= address) {
      best = range;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return best !== undefined && address < best.start + best.size ? best.name : undefined;
}

/** A function's name as the report shows it: paths shortened to the repository's or the package's. */
function shortName(name: string): string {
  return name
    .replace(/file:\/\/\/\S*?\/dist\//, '')
    .replace(/\S*\/dist\//, '')
    .replace(/\S*node_modules\//, '')
    .replace(/\s*\[[^\]]*\]$/, '')
    .replace(/^\?\?\?:/, '')
    .slice(0, 140);
}

export interface FunctionCost {
  readonly name: string;
  readonly instructions: number;
}

/** Self instructions per function in a dump, heaviest first; generated code named from `perfMap` when given. */
export function functionCosts(file: string, perfMap: string | undefined): FunctionCost[] {
  const ranges = perfMap === undefined || !existsSync(perfMap) ? [] : readPerfMap(perfMap);
  const text = execFileSync('callgrind_annotate', ['--threshold=100', '--auto=no', file], { maxBuffer: 1 << 28, encoding: 'utf8' });
  const lines = text.split('\n');
  const byName = new Map<string, number>();
  let inTable = false;
  for (const line of lines) {
    if (!inTable) {
      inTable = line.includes('file:function');
      continue;
    }
    if (line.startsWith('---')) {
      if (byName.size > 0) break;
      continue;
    }
    const match = /^\s*([\d,]+) \([^)]*\)\s+(.*)$/.exec(line);
    if (match === null) continue;
    const count = Number((match[1] as string).replace(/,/g, ''));
    const where = match[2] as string;
    const address = /\?\?\?:0x([0-9a-f]+)/.exec(where);
    const name = address === null ? where : (nameAt(ranges, parseInt(address[1] as string, 16)) ?? '(generated code)');
    const key = shortName(name);
    byName.set(key, (byName.get(key) ?? 0) + count);
  }
  return [...byName.entries()].map(([name, instructions]) => ({ name, instructions })).sort((a, b) => b.instructions - a.instructions);
}

/** The group a function counts towards in the summary: the garbage collector, the compilers, our code, … */
export function costGroup(name: string): string {
  if (
    /Scaveng|Heap::|MarkCompact|Sweeper|Evacuat|IterateObjectCache|BodyDescriptor|Pretenuring|Marking|SlotSet|RememberedSet|heap::|MinorMC|SemiSpace|NewSpace|PagedSpace|SizeFromMap|GCTracer/.test(
      name,
    )
  )
    return 'V8 garbage collector';
  if (/compiler::|[Mm]aglev|[Tt]urboshaft|Compiler|interpreter::|Parser|Scanner|Bytecode/.test(name)) return 'V8 compilers';
  if (/^JS:\S* src\//.test(name)) return 'ours (src/)';
  if (/^JS:/.test(name)) return /node:/.test(name) ? 'node (JS)' : 'packages (JS)';
  if (/^RegExp:/.test(name) || /RegExp/.test(name)) return 'regular expressions';
  if (/^Builtins_/.test(name)) return 'V8 builtins';
  if (/^(Stub|Builtin|Handler|LoadIC|KeyedLoadIC|StoreIC|BytecodeHandler):/.test(name)) return 'V8 builtins';
  if (/node::|uv_|uv__/.test(name)) return 'node and libuv (C++)';
  if (/v8::/.test(name)) return 'V8 runtime (C++)';
  if (/libc|memcpy|memmove|memset|malloc|free|\.S:|\.c:/.test(name)) return 'libc';
  return 'other';
}
