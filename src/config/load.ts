import { readFileSync } from 'node:fs';
import type { z } from 'zod';
import { dirname, isAbsolute, resolve } from 'node:path';
import { errorMessage, ProxyError } from '../errors';
import type { InterceptorTypes } from '../chain/interceptor-types';
import { describeIssue, formatPath, type ConfigIssue, type IssuePath } from './issues';
import { proxyConfigSchema, validateProxyConfig, type ProxyConfig } from './schema';
import { listenDirectoryIssues } from './socket-safety';
import { isRecord } from '../values';
import { parseYaml, sortIssues } from './yaml';

/** The runtime socket used when no config file names one. */
export const DEFAULT_UPSTREAM = 'unix:///run/containerd/containerd.sock';

/** The configuration is unusable; `issues` lists every problem found, one line each in `message`. */
export class ConfigError extends ProxyError {
  constructor(
    readonly source: string,
    readonly issues: readonly ConfigIssue[],
  ) {
    super('CONFIG_INVALID', issues.map((i) => `config ${source}: ${describeIssue(i)}`).join('\n'));
  }
}

/** The file could not be read at all (as opposed to read and found invalid). */
export class ConfigReadError extends ConfigError {}

/** Values given on the command line; each replaces what the file says. */
export interface ConfigOverrides {
  readonly listen?: string | undefined;
  /** Endpoint of the default backend (or of a backend named `default` when the file has none). */
  readonly upstream?: string | undefined;
  readonly logLevel?: string | undefined;
  /** `http.listen`; "" turns the HTTP listener off. */
  readonly httpListen?: string | undefined;
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
  if (o.httpListen !== undefined) {
    out.http = { ...(isRecord(out.http) ? out.http : {}), listen: o.httpListen };
    flags.set('http.listen', '--http-listen');
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

function validate(
  input: unknown,
  source: string,
  types: InterceptorTypes,
  overrides: ConfigOverrides,
  place: (path: IssuePath) => { line: number; column: number } | undefined,
): ProxyConfig {
  const applied = applyOverrides(input, overrides);
  const result = validateProxyConfig(applied.input, types);
  // The socket's directory is checked where the file is read (validate, start, reload), not by the pure schema;
  // whenever the settings it needs are valid, so that its problem is reported together with any other.
  const socket = result.ok ? result.config : socketSettings(applied.input);
  const found = [...(result.ok ? [] : result.issues), ...(socket === undefined ? [] : listenDirectoryIssues(socket))];
  if (result.ok && found.length === 0) return result.config;
  const issues = found.map((iss): ConfigIssue => {
    const path = formatPath(iss.path);
    const flag = applied.flags.get(path);
    if (flag !== undefined) return { path: flag, message: iss.message };
    return { path, message: iss.message, ...place(iss.path) };
  });
  // Problems without a place (flags, missing sections) first, then in file order.
  throw new ConfigError(source, sortIssues(issues));
}

/**
 * The value with every relative path at the dotted key path `keys` made absolute; `*` stands for every key of a map
 * or every item of a list (`registries.*.caFile`, `rules.*.verify.*.keys.*`). Copies only what it changes.
 */
function resolveAt(value: unknown, keys: readonly string[], baseDir: string): unknown {
  const [key, ...rest] = keys;
  if (key === undefined) return typeof value === 'string' && value !== '' && !isAbsolute(value) ? resolve(baseDir, value) : value;
  if (Array.isArray(value)) return key === '*' ? value.map((item: unknown) => resolveAt(item, rest, baseDir)) : value;
  if (!isRecord(value)) return value;
  const out = { ...value };
  for (const name of key === '*' ? Object.keys(out) : [key]) if (Object.hasOwn(out, name)) out[name] = resolveAt(out[name], rest, baseDir);
  return out;
}

const socketSettingsSchema = proxyConfigSchema.pick({ listen: true, socketMode: true, allowInsecureSocket: true });

/** The settings of the listen socket from a document that may be invalid elsewhere; undefined if they are not valid. */
function socketSettings(input: unknown): z.output<typeof socketSettingsSchema> | undefined {
  if (!isRecord(input)) return undefined;
  const { listen, socketMode, allowInsecureSocket } = input;
  const result = socketSettingsSchema.safeParse({ listen, socketMode, allowInsecureSocket });
  return result.success ? result.data : undefined;
}

/** Relative file paths in interceptor configs mean "next to the config file", whatever the working directory. */
function resolveRelativePaths(input: unknown, baseDir: string, types: InterceptorTypes): unknown {
  if (!isRecord(input) || !Array.isArray(input['interceptors'])) return input;
  const interceptors = input['interceptors'].map((entry: unknown) => {
    if (!isRecord(entry) || typeof entry['type'] !== 'string' || !isRecord(entry['config'])) return entry;
    const keys = types.get(entry['type'])?.pathKeys ?? [];
    let config: unknown = entry['config'];
    for (const key of keys) config = resolveAt(config, key.split('.'), baseDir);
    return { ...entry, config };
  });
  return { ...input, interceptors };
}

/** Parses and validates a config file's text; `source` names it in error messages. */
export function parseConfig(yamlText: string, source: string, types: InterceptorTypes, overrides: ConfigOverrides = {}): ProxyConfig {
  const parsed = parseYaml(yamlText);
  if (!parsed.ok) throw new ConfigError(source, parsed.issues);
  return validate(resolveRelativePaths(parsed.input, dirname(resolve(source)), types), source, types, overrides, parsed.place);
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
    throw new ConfigReadError(path, [{ path: '', message: `cannot read file: ${errorMessage(err)}` }]);
  }
  return parseConfig(text, path, types, overrides);
}
