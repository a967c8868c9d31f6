/** YAML text to a value checked by a schema, every problem placed at its key: one way for every file the proxy reads. */
import { isMap, isNode, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';
import { errorMessage } from '../errors';
import { errorMap, formatPath, zodIssues, type ConfigIssue, type IssuePath, type PathIssue } from './issues';

type Position = { readonly line: number; readonly column: number };

export type ParsedYaml =
  | { readonly ok: true; readonly input: unknown; readonly place: (path: IssuePath) => Position | undefined }
  | { readonly ok: false; readonly issues: ConfigIssue[] };

function positionOf(lines: LineCounter, offset: number): Position {
  const { line, col } = lines.linePos(offset);
  return { line, column: col };
}

/** Offset of the YAML node a key path points at: the key for map entries, the item for list entries. */
function locate(doc: Document, path: IssuePath): number | undefined {
  let node: unknown = doc.contents;
  let offset = isNode(node) ? node.range?.[0] : undefined;
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      if (pair === undefined) break;
      offset = isNode(pair.key) ? (pair.key.range?.[0] ?? offset) : offset;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      node = node.items[seg];
      offset = isNode(node) ? (node.range?.[0] ?? offset) : offset;
    } else break;
  }
  return offset;
}

/**
 * Parses one YAML document. Duplicate keys and warnings (unknown tags, say) are errors too: a value that might
 * be misread should stop the load. An empty document reads as `{}`.
 */
export function parseYaml(text: string): ParsedYaml {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const yamlIssues = [...doc.errors, ...doc.warnings].map((e): ConfigIssue => ({
    path: '',
    message: e.message,
    ...positionOf(lines, e.pos[0]),
  }));
  if (yamlIssues.length > 0) return { ok: false, issues: yamlIssues };
  let input: unknown;
  try {
    input = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    return { ok: false, issues: [{ path: '', message: errorMessage(err) }] };
  }
  const place = (path: IssuePath): Position | undefined => {
    const offset = locate(doc, path);
    return offset === undefined ? undefined : positionOf(lines, offset);
  };
  return { ok: true, input: input ?? {}, place };
}

/** Path issues as the user sees them, in file order (those without a place first). */
export function placeIssues(issues: readonly PathIssue[], place: (path: IssuePath) => Position | undefined): ConfigIssue[] {
  const placed = issues.map((iss): ConfigIssue => ({ path: formatPath(iss.path), message: iss.message, ...place(iss.path) }));
  return sortIssues(placed);
}

export function sortIssues(issues: readonly ConfigIssue[]): ConfigIssue[] {
  const key = (i: ConfigIssue): number => (i.line === undefined ? -1 : i.line * 1e6 + (i.column ?? 0));
  return [...issues].sort((a, b) => key(a) - key(b));
}

/** YAML text validated by a zod schema. */
export function parseYamlWith<S extends z.ZodType>(
  text: string,
  schema: S,
): { readonly ok: true; readonly value: z.output<S> } | { readonly ok: false; readonly issues: ConfigIssue[] } {
  const parsed = parseYaml(text);
  if (!parsed.ok) return parsed;
  const result = schema.safeParse(parsed.input, { error: errorMap });
  if (result.success) return { ok: true, value: result.data };
  return { ok: false, issues: placeIssues(zodIssues(result.error.issues), parsed.place) };
}
