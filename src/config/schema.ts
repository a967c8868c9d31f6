import { z } from 'zod';
import { errorMessage } from '../errors';
import { SocketMode, TcpListenAddress, UnixAddress } from './address';
import { LIMITS } from '../proxy/limits';
import type { InterceptorType, InterceptorTypes } from '../chain/interceptor-types';
import { compileMethodFilter } from '../chain/chain';
import { methodTable } from '../chain/method-table';
import { errorMap, zodIssues, type PathIssue } from './issues';
import { socketModeProblem } from './socket-safety';
import { isRecord, MAX_INT32 } from '../values';
import { podStartsConfigSchema } from '../observability/pod-start-config';

export const DEFAULT_LISTEN = 'unix:///run/cri-proxy/cri-proxy.sock';
export const DEFAULT_HTTP_LISTEN = '127.0.0.1:9464';
export const DEFAULT_SOCKET_MODE = '0660';
export const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
export const DEFAULT_SHUTDOWN_GRACE_SECONDS = 30;
export const DEFAULT_CONNECT_TIMEOUT_MS = 1000;
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export const ON_ERROR_MODES = ['failClosed', 'failOpen'] as const;

/**
 * A string parsed once, here, into the value the rest of the program carries; the parser's message becomes the
 * issue when it throws.
 */
function parsedAs<T>(parse: (s: string) => T, typeError?: string) {
  return z.string(typeError === undefined ? undefined : { error: typeError }).transform((value, ctx) => {
    try {
      return parse(value);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: errorMessage(err) });
      return z.NEVER;
    }
  });
}

const unixAddress = parsedAs((s) => new UnixAddress(s));

type LimitsShape = { readonly [K in keyof typeof LIMITS]: z.ZodDefault<z.ZodInt> };

/** `limits`: its keys, ranges and defaults all come from LIMITS. */
export const limitsSchema = z
  .strictObject(
    Object.fromEntries(
      Object.entries(LIMITS).map(([key, spec]) => [key, z.int().min(spec.min).max(spec.max).default(spec.default)]),
    ) as LimitsShape,
  )
  .prefault({});

const instanceName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'must be 1-63 letters, digits, ".", "_" or "-", starting with a letter or digit');
// `Method`, `Service/Method` or either with `*` globs, e.g. `runtime.v1.ImageService/*`.
const methodPattern = z
  .string()
  .regex(/^(?:[A-Za-z0-9_.*]+\/)?[A-Za-z0-9_*]+$/, 'must be a method name, Service/Method, or a glob using *');

const backendSchema = z.strictObject({
  name: instanceName,
  /** Address of the runtime socket (`unix:///path` or `/path`); see parseUnixAddress. */
  endpoint: unixAddress,
  default: z.boolean().default(false),
  connectTimeoutMs: z.int().min(1).max(MAX_INT32).default(DEFAULT_CONNECT_TIMEOUT_MS),
});

const interceptorEntrySchema = z.strictObject({
  name: instanceName,
  // Whether the type exists, and its `config`, are checked against the known types afterwards.
  type: z.string(),
  methods: z.array(methodPattern).min(1, 'must list at least one method; omit it to match all').optional(),
  onError: z.enum(ON_ERROR_MODES).default('failClosed'),
  config: z.unknown().optional(),
});

/** The file's shape; cross-entry rules and interceptor configs are checked by validateProxyConfig. */
export const proxyConfigSchema = z.strictObject({
  listen: unixAddress.prefault(DEFAULT_LISTEN),
  // YAML reads an unquoted 0660 as the decimal 660, so only a string is unambiguous.
  socketMode: parsedAs((s) => new SocketMode(s), 'must be a quoted octal string such as "0660"').prefault(DEFAULT_SOCKET_MODE),
  /** Accept a socketMode or listen directory that gives other users write access (logged at warn at start). */
  allowInsecureSocket: z.boolean().default(false),
  logLevel: z.enum(LOG_LEVELS).default('info'),
  maxMessageBytes: z.int().min(1).max(MAX_INT32).default(DEFAULT_MAX_MESSAGE_BYTES),
  shutdownGraceSeconds: z.number().min(0).max(3600).default(DEFAULT_SHUTDOWN_GRACE_SECONDS),
  /** What each client connection may use (docs/data-plane.md). */
  limits: limitsSchema,
  http: z
    .strictObject({
      /** `host:port` of the health/metrics listener; "" disables it. */
      listen: parsedAs((s) => new TcpListenAddress(s)).prefault(DEFAULT_HTTP_LISTEN),
    })
    .prefault({}),
  /** Pod starts followed and kept for the admin page (docs/pod-starts.md). */
  podStarts: podStartsConfigSchema,
  backends: z.array(backendSchema).min(1, 'at least one backend is required'),
  interceptors: z.array(interceptorEntrySchema).default([]),
});

export type DeepReadonly<T> = T extends (...args: never) => unknown
  ? T
  : T extends (infer U)[]
    ? readonly DeepReadonly<U>[]
    : T extends object
      ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
      : T;

export type ProxyConfig = DeepReadonly<z.output<typeof proxyConfigSchema>>;
export type BackendConfig = ProxyConfig['backends'][number];

export type ValidationResult = { ok: true; config: ProxyConfig } | { ok: false; issues: PathIssue[] };

/** Entries of a list that are objects, with their index; anything else zod has already reported. */
function records(list: unknown): [Record<string, unknown>, number][] {
  if (!Array.isArray(list)) return [];
  return list.flatMap((e: unknown, i) => (isRecord(e) ? [[e, i] as [Record<string, unknown>, number]] : []));
}

function checkUniqueNames(section: string, list: unknown, issues: PathIssue[]): void {
  const seen = new Map<string, number>();
  for (const [entry, i] of records(list)) {
    if (typeof entry.name !== 'string') continue;
    const first = seen.get(entry.name);
    if (first === undefined) seen.set(entry.name, i);
    else issues.push({ path: [section, i, 'name'], message: `duplicate name "${entry.name}" (also ${section}[${first}])` });
  }
}

// Runs on the raw input rather than as a zod refinement: zod skips refinements of a list once any
// entry has an issue, and every problem should be reported at once.
function checkBackends(list: unknown, issues: PathIssue[]): void {
  checkUniqueNames('backends', list, issues);
  const entries = records(list);
  const defaults = entries.filter(([e]) => e.default === true).map(([, i]) => i);
  const [first, ...extra] = defaults;
  for (const i of extra) {
    issues.push({ path: ['backends', i, 'default'], message: `only one backend may be the default (backends[${first}] is)` });
  }
  if (first === undefined && entries.length > 1) {
    issues.push({ path: ['backends'], message: 'exactly one backend must have default: true' });
  }
}

function checkSocketMode(raw: Record<string, unknown>, issues: PathIssue[]): void {
  if (raw.allowInsecureSocket === true || typeof raw.socketMode !== 'string') return;
  let mode: SocketMode;
  try {
    mode = new SocketMode(raw.socketMode);
  } catch {
    // Reported by the schema.
    return;
  }
  const problem = socketModeProblem(mode.mode);
  if (problem !== undefined) issues.push({ path: ['socketMode'], message: problem });
}

/** Checks each entry's type and config; returns each config's validated output by index. */
function checkInterceptors(list: unknown, types: InterceptorTypes, backends: readonly string[], issues: PathIssue[]): unknown[] {
  checkUniqueNames('interceptors', list, issues);
  const outputs: unknown[] = [];
  for (const [entry, i] of records(list)) {
    if (typeof entry.type !== 'string') continue;
    const def = types.get(entry.type);
    if (def === undefined) {
      const names = types.names();
      const known = names.length > 0 ? `known types: ${names.join(', ')}` : 'no types are known';
      issues.push({ path: ['interceptors', i, 'type'], message: `unknown interceptor type "${entry.type}" (${known})` });
      continue;
    }
    const prefix = ['interceptors', i, 'config'];
    try {
      // `config:` left empty in YAML reads as null; both mean "no settings".
      const result = def.schema.safeParse(entry.config ?? {}, { error: errorMap });
      if (result.success) outputs[i] = result.data;
      else issues.push(...zodIssues(result.error.issues, prefix));
      // On the config as written, so that a backend it names wrongly is reported with its other problems.
      for (const issue of def.checkBackends?.(entry.config ?? {}, backends) ?? []) {
        issues.push({ path: [...prefix, ...issue.path], message: issue.message });
      }
    } catch (err) {
      issues.push({ path: prefix, message: errorMessage(err) });
    }
  }
  return outputs;
}

/** What registered types say about their place in the chain (see InterceptorType: runsBefore, everyMethod, keepsMethods, endsCalls, observesEveryCall). */
function checkChainOrder(list: unknown, types: InterceptorTypes, issues: PathIssue[]): void {
  const entries = records(list).flatMap(([e, i]) => {
    const def = typeof e.type === 'string' ? types.get(e.type) : undefined;
    return def === undefined ? [] : [{ i, def, name: String(e.name), methods: e.methods }];
  });
  for (const { i, def, name, methods } of entries) {
    const type = def.name;
    if (methods !== undefined) checkMethods(def, i, methods, issues);
    for (const earlier of entries.filter((x) => x.i < i && Object.hasOwn(def.runsBefore ?? {}, x.def.name))) {
      const why = def.runsBefore?.[earlier.def.name] ?? '';
      issues.push({
        path: ['interceptors', earlier.i, 'type'],
        message: `must come after the ${type} entry "${name}" (interceptors[${i}]): ${why}`,
      });
    }
    if (def.observesEveryCall === undefined) continue;
    for (const earlier of entries.filter((x) => x.i < i && x.def.endsCalls !== undefined)) {
      issues.push({
        path: ['interceptors', i, 'type'],
        message:
          `the ${type} entry "${name}" must come before the ${earlier.def.name} entry "${earlier.name}" (interceptors[${earlier.i}]), ` +
          `which ${earlier.def.endsCalls ?? ''}: after it, ${def.observesEveryCall}`,
      });
    }
  }
}

function checkMethods(def: InterceptorType, i: number, methods: unknown, issues: PathIssue[]): void {
  if (def.everyMethod === true) {
    issues.push({ path: ['interceptors', i, 'methods'], message: `a ${def.name} entry must see every call; remove "methods"` });
  }
  const keep = def.keepsMethods ?? [];
  if (keep.length === 0 || !Array.isArray(methods) || !methods.every((m) => typeof m === 'string')) return;
  const matches = compileMethodFilter(methods);
  const left = methodTable.filter((m) => keep.includes(m.name) && !matches(m)).map((m) => m.name);
  if (left.length === 0) return;
  issues.push({
    path: ['interceptors', i, 'methods'],
    message: `leaves out ${left.join(', ')}, which every ${def.name} entry must run for (${keep.join(', ')}); add them or remove "methods"`,
  });
}

/**
 * Freezes plain objects and arrays all the way down. Other objects (RegExp, Map, class instances
 * a type's schema may produce) are left alone: freezing those breaks them without making them immutable.
 */
export function deepFreeze<T>(value: T): DeepReadonly<T> {
  const proto: unknown = typeof value === 'object' && value !== null ? Object.getPrototypeOf(value) : undefined;
  const plain = Array.isArray(value) || proto === Object.prototype || proto === null;
  // Freezing before recursing also stops at cycles, which YAML aliases can create.
  if (plain && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as object)) deepFreeze(v);
  }
  return value as DeepReadonly<T>;
}

/** Validates a parsed config document: every problem is reported, each with its key path. */
export function validateProxyConfig(input: unknown, types: InterceptorTypes): ValidationResult {
  const issues: PathIssue[] = [];
  const base = proxyConfigSchema.safeParse(input, { error: errorMap });
  if (!base.success) issues.push(...zodIssues(base.error.issues));
  const raw = isRecord(input) ? input : {};
  checkBackends(raw.backends, issues);
  checkSocketMode(raw, issues);
  const backendNames = [...new Set(records(raw.backends).flatMap(([b]) => (typeof b.name === 'string' ? [b.name] : [])))];
  const configs = checkInterceptors(raw.interceptors, types, backendNames, issues);
  checkChainOrder(raw.interceptors, types, issues);
  if (!base.success || issues.length > 0) return { ok: false, issues };
  const out = base.data;
  const only = out.backends.length === 1;
  return {
    ok: true,
    config: deepFreeze({
      ...out,
      backends: out.backends.map((b) => (only ? { ...b, default: true } : b)),
      interceptors: out.interceptors.map((e, i) => ({ ...e, config: configs[i] })),
    }),
  };
}

/** The backend calls go to unless routing picks another (validation guarantees exactly one). */
export function defaultBackend(config: ProxyConfig): BackendConfig {
  const found = config.backends.find((b) => b.default);
  if (found === undefined) throw new Error('config has no default backend');
  return found;
}
