import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { isMap, isNode, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import { errorMessage, ProxyError } from '../errors';
import type { InterceptorTypes } from './interceptor-types';
import { formatPath, validateProxyConfig, type IssuePath, type ProxyConfig } from './schema';

/** The runtime socket used when no config file names one. */
export const DEFAULT_UPSTREAM = 'unix:///run/containerd/containerd.sock';

export interface ConfigIssue {
  /** Key path such as `backends[0].endpoint`, the flag (`--listen`) that set the value, or "" for the file. */
  readonly path: string;
  readonly message: string;
  /** 1-based position in the file, when the problem can be placed there. */
  readonly line?: number;
  readonly column?: number;
}

function formatIssue(source: string, issue: ConfigIssue): string {
  const where = issue.line === undefined ? '' : ` (line ${issue.line}, column ${issue.column ?? 1})`;
  const path = issue.path === '' ? '' : `${issue.path}: `;
  return `config ${source}: ${path}${issue.message}${where}`;
}

/** The configuration is unusable; `issues` lists every problem found, one line each in `message`. */
export class ConfigError extends ProxyError {
  constructor(
    readonly source: string,
    readonly issues: readonly ConfigIssue[],
  ) {
    super('CONFIG_INVALID', issues.map((i) => formatIssue(source, i)).join('\n'));
  }
}

/** Values given on the command line; each replaces what the file says. */
export interface ConfigOverrides {
  readonly listen?: string | undefined;
  /** Endpoint of the default backend (or of a backend named `default` when the file has none). */
  readonly upstream?: string | undefined;
  readonly logLevel?: string | undefined;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Applies flags to the parsed document; `flags` maps each replaced key path to its flag for error reports. */
function applyOverrides(input: unknown, o: ConfigOverrides): { input: unknown; flags: Map<string, string> } {
  const flags = new Map<string, string>();
  if (!isRecord(input)) return { input, flags };
  const out: Record<string, unknown> = { ...input };
  if (o.listen !== undefined) {
    out.listen = o.listen;
    flags.set('listen', '--listen');
  }
  if (o.logLevel !== undefined) {
    out.logLevel = o.logLevel;
    flags.set('logLevel', '--log-level');
  }
  const upstream = o.upstream;
  if (upstream !== undefined) {
    const list = out.backends;
    if (list === undefined || list === null || (Array.isArray(list) && list.length === 0)) {
      out.backends = [{ name: 'default', endpoint: upstream, default: true }];
      flags.set('backends[0].endpoint', '--upstream');
    } else if (Array.isArray(list)) {
      // With no default marked among several, validation reports that; there is nothing to replace.
      const i = list.length === 1 ? 0 : list.findIndex((b) => isRecord(b) && b.default === true);
      out.backends = list.map((b: unknown, j) => (j === i && isRecord(b) ? { ...b, endpoint: upstream } : b));
      if (i >= 0) flags.set(`backends[${i}].endpoint`, '--upstream');
    }
  }
  return { input: out, flags };
}

type Position = { line: number; column: number };

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

function validate(
  input: unknown,
  source: string,
  types: InterceptorTypes,
  overrides: ConfigOverrides,
  position: (path: IssuePath) => Position | undefined,
): ProxyConfig {
  const applied = applyOverrides(input, overrides);
  const result = validateProxyConfig(applied.input, types);
  if (result.ok) return result.config;
  const issues = result.issues.map((iss): ConfigIssue => {
    const path = formatPath(iss.path);
    const flag = applied.flags.get(path);
    if (flag !== undefined) return { path: flag, message: iss.message };
    return { path, message: iss.message, ...position(iss.path) };
  });
  // Problems without a place (flags, missing sections) first, then in file order.
  const key = (i: ConfigIssue): number => (i.line === undefined ? -1 : i.line * 1e6 + (i.column ?? 0));
  throw new ConfigError(source, [...issues].sort((a, b) => key(a) - key(b)));
}

/** Relative file paths in interceptor configs mean "next to the config file", whatever the working directory. */
function resolveRelativePaths(input: unknown, baseDir: string, types: InterceptorTypes): unknown {
  if (!isRecord(input) || !Array.isArray(input['interceptors'])) return input;
  const interceptors = input['interceptors'].map((entry: unknown) => {
    if (!isRecord(entry) || typeof entry['type'] !== 'string' || !isRecord(entry['config'])) return entry;
    const keys = types.get(entry['type'])?.pathKeys ?? [];
    const config = { ...entry['config'] };
    for (const key of keys) {
      const value = config[key];
      if (typeof value === 'string' && value !== '' && !isAbsolute(value)) config[key] = resolve(baseDir, value);
    }
    return { ...entry, config };
  });
  return { ...input, interceptors };
}

/** Parses and validates a config file's text; `source` names it in error messages. */
export function parseConfig(yamlText: string, source: string, types: InterceptorTypes, overrides: ConfigOverrides = {}): ProxyConfig {
  const lines = new LineCounter();
  const doc = parseDocument(yamlText, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  // Warnings (unknown tags, say) are errors too: a value that might be misread should stop startup.
  const yamlIssues = [...doc.errors, ...doc.warnings].map(
    (e): ConfigIssue => ({ path: '', message: e.message, ...positionOf(lines, e.pos[0]) }),
  );
  if (yamlIssues.length > 0) throw new ConfigError(source, yamlIssues);
  let input: unknown;
  try {
    input = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ConfigError(source, [{ path: '', message: errorMessage(err) }]);
  }
  // An empty file is an empty config, not an error about `null`.
  return validate(resolveRelativePaths(input ?? {}, dirname(resolve(source)), types), source, types, overrides, (path) => {
    const offset = locate(doc, path);
    return offset === undefined ? undefined : positionOf(lines, offset);
  });
}

/** Loads the config file, or builds the config from defaults and flags alone when `path` is undefined. */
export function loadConfigFile(path: string | undefined, types: InterceptorTypes, overrides: ConfigOverrides = {}): ProxyConfig {
  if (path === undefined) {
    const withUpstream = { ...overrides, upstream: overrides.upstream ?? DEFAULT_UPSTREAM };
    return validate({}, '(command line)', types, withUpstream, () => undefined);
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, [{ path: '', message: `cannot read file: ${errorMessage(err)}` }]);
  }
  return parseConfig(text, path, types, overrides);
}
