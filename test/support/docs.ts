/**
 * The project's documentation (README.md and docs/*.md) read as claims a test can check: fenced blocks, inline
 * code, tables, links, headings and the command lines they show, each with the line it is on, so that a failed
 * check names the doc line that is false (`docs/audit.md:172: ...`).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const ROOT = join(__dirname, '../..');

/** A piece of a doc and where it is: `where` reads `docs/audit.md:172`. */
export interface Located<T> {
  readonly value: T;
  readonly where: string;
  /** 1-based line number. */
  readonly line: number;
}

export interface CodeBlock {
  readonly lang: string;
  /** Line number of the block's first content line. */
  readonly line: number;
  readonly lines: readonly string[];
}

export interface Table {
  readonly header: readonly string[];
  readonly rows: readonly Located<readonly string[]>[];
  readonly line: number;
}

export interface Doc {
  /** Path from the repository root, e.g. `docs/audit.md`. */
  readonly file: string;
  readonly text: string;
  readonly blocks: readonly CodeBlock[];
  /** Inline code spans outside fenced blocks; a span broken over two lines is joined with a space. */
  readonly spans: readonly Located<string>[];
  readonly tables: readonly Table[];
  /** Link targets `[...](target)` outside code. */
  readonly links: readonly Located<string>[];
  /** GitHub's anchors of the headings. */
  readonly anchors: ReadonlySet<string>;
  /** The text outside fenced blocks, line by line (blank where a block was, so line numbers hold). */
  readonly prose: readonly string[];
}

/** README.md and every docs/*.md, as they are in the checkout. */
export function readDocs(): Doc[] {
  const files = [
    'README.md',
    ...readdirSync(join(ROOT, 'docs'))
      .filter((f) => f.endsWith('.md'))
      .map((f) => `docs/${f}`),
  ];
  return files.sort().map((file) => parseDoc(file, readFileSync(join(ROOT, file), 'utf8')));
}

export function parseDoc(file: string, text: string): Doc {
  const lines = text.split('\n');
  const blocks: CodeBlock[] = [];
  const prose: string[] = [];
  let open: { lang: string; line: number; lines: string[] } | undefined;
  lines.forEach((line, i) => {
    const fence = /^\s*```(\S*)/.exec(line);
    if (fence !== null) {
      if (open === undefined) open = { lang: fence[1] ?? '', line: i + 2, lines: [] };
      else {
        blocks.push(open);
        open = undefined;
      }
      prose.push('');
    } else if (open !== undefined) {
      open.lines.push(line);
      prose.push('');
    } else prose.push(line);
  });
  const at = (line: number): string => `${file}:${line}`;
  const proseText = prose.join('\n');
  const lineOf = (index: number): number => proseText.slice(0, index).split('\n').length;
  const spans: Located<string>[] = [];
  for (const m of proseText.matchAll(/(`+)([^`]+?)\1(?!`)/g)) {
    const line = lineOf(m.index);
    spans.push({ value: (m[2] ?? '').replace(/\s*\n\s*/g, ' ').trim(), where: at(line), line });
  }
  const links: Located<string>[] = [];
  const withoutCode = proseText.replace(/`[^`]*`/g, (s) => s.replace(/[^\n]/g, ' '));
  for (const m of withoutCode.matchAll(/\]\(([^)\s]+)\)/g)) {
    const line = lineOf(m.index);
    links.push({ value: m[1] ?? '', where: at(line), line });
  }
  const anchors = new Set(prose.filter((l) => /^#{1,6} /.test(l)).map((l) => slug(l.replace(/^#+ /, ''))));
  return { file, text, blocks, spans, tables: tablesOf(prose, at), links, anchors, prose };
}

/** GitHub's anchor for a heading. */
export function slug(heading: string): string {
  return heading
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\- ]/gu, '')
    .replace(/ /g, '-');
}

/** Splits a table row on `|`, except inside inline code. */
function cells(row: string): string[] {
  const out: string[] = [];
  let cell = '';
  let code = false;
  for (const ch of row.trim().replace(/^\||\|$/g, '')) {
    if (ch === '`') code = !code;
    if (ch === '|' && !code) {
      out.push(cell.trim());
      cell = '';
    } else cell += ch;
  }
  out.push(cell.trim());
  return out;
}

function tablesOf(prose: readonly string[], at: (line: number) => string): Table[] {
  const tables: Table[] = [];
  for (let i = 0; i < prose.length; i++) {
    if (!prose[i]?.startsWith('|') || !/^\|[\s|:-]+\|$/.test(prose[i + 1]?.trim() ?? '')) continue;
    const header = cells(prose[i] ?? '');
    const rows: Located<string[]>[] = [];
    let j = i + 2;
    for (; prose[j]?.startsWith('|') === true; j++) rows.push({ value: cells(prose[j] ?? ''), where: at(j + 1), line: j + 1 });
    tables.push({ header, rows, line: i + 1 });
    i = j;
  }
  return tables;
}

/** The first inline code span of a table cell, if the cell starts with one: `` `10000` (10 s) `` → `10000`. */
export function leadingCode(cell: string): string | undefined {
  return /^`([^`]*)`/.exec(cell)?.[1];
}

/** A command line a doc shows, as written (a trailing `# comment` removed). */
export interface DocCommand {
  readonly text: string;
  readonly where: string;
  readonly line: number;
  /** The doc's file, for commands whose meaning depends on where they are shown. */
  readonly file: string;
}

/** What the docs call the command: the executable, and scripts that pass their arguments on to it. */
const PROGRAMS: Readonly<Record<string, string>> = { 'cri-proxy': 'cri-proxy', './scripts/run.sh': 'cri-proxy' };

/** Command lines of `cri-proxy` in fenced shell blocks and in inline code, in doc order. */
export function commandLines(doc: Doc): DocCommand[] {
  const found: DocCommand[] = [];
  const add = (raw: string, line: number): void => {
    const text = raw.replace(/\s+#\s.*$/, '').trim();
    const [program] = text.split(/\s+/);
    const name = program === undefined ? undefined : PROGRAMS[program];
    if (name !== undefined)
      found.push({ text: `${name}${text.slice(program?.length ?? 0)}`, where: `${doc.file}:${line}`, line, file: doc.file });
  };
  for (const block of doc.blocks) {
    if (!['', 'sh', 'bash', 'shell', 'console'].includes(block.lang)) continue;
    block.lines.forEach((l, i) => add(l.trim(), block.line + i));
  }
  for (const span of doc.spans) add(span.value, span.line);
  return found.sort((a, b) => a.line - b.line);
}

/** Splits a command line into words as a shell would (quotes kept together, without globbing). */
export function shellWords(text: string): string[] {
  const words: string[] = [];
  for (const m of text.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)) words.push(m[1] ?? m[2] ?? m[3] ?? '');
  return words;
}
