/**
 * The keys a zod config schema accepts, read from the schema itself: for tests that hold docs and `config print`
 * to what the schemas say. Paths are written as the docs write them: `limits.maxConnections`, `rules[].backend`.
 */
import type { z } from 'zod';

export interface SchemaKey {
  /** Dotted path; `[]` stands for the entries of a list, `*` for the values of a map (`registries.*.caFile`). */
  readonly path: string;
  /** May be left out (with or without a default). */
  readonly optional: boolean;
  /** The default filled in when left out (`.default()`), if any. */
  readonly default?: { readonly value: unknown };
  /** What the value is, after defaults and optionality. */
  readonly kind: 'object' | 'list' | 'map' | 'value';
  /** Filled in whenever the document above it is: no optional key without a default, and no list, stands above. */
  readonly alwaysPresent: boolean;
}

interface Def {
  readonly type: string;
  readonly innerType?: z.ZodType;
  readonly defaultValue?: unknown;
  readonly in?: z.ZodType;
  readonly shape?: Readonly<Record<string, z.ZodType>>;
  readonly element?: z.ZodType;
  /** A record's value schema. */
  readonly valueType?: z.ZodType;
}

const defOf = (schema: z.ZodType): Def => (schema as unknown as { _zod: { def: Def } })._zod.def;

/** The schema under wrappers (optional, default, pipes …), and what the wrappers say. */
function unwrap(schema: z.ZodType): { inner: Def; optional: boolean; filled: boolean; default?: { value: unknown } } {
  let optional = false;
  let filled = false;
  let fallback: { value: unknown } | undefined;
  for (let def = defOf(schema); ;) {
    if (def.type === 'optional' || def.type === 'nullable') optional = true;
    // A prefault is parsed through the inner schema: its own defaults then show under its keys.
    if (def.type === 'default' || def.type === 'prefault') [optional, filled] = [true, true];
    if (def.type === 'default') fallback ??= { value: def.defaultValue };
    // A prefaulted value (an address parsed from its default text) defaults to that text, as config print shows it.
    const text = def.type === 'prefault' && (typeof def.defaultValue !== 'object' || def.defaultValue === null);
    if (text) fallback ??= { value: def.defaultValue };
    const next = def.type === 'pipe' ? def.in : def.innerType;
    if (next === undefined) return { inner: def, optional, filled, ...(fallback === undefined ? {} : { default: fallback }) };
    def = defOf(next);
  }
}

/** Every key of `schema` (an object schema), depth first. */
export function schemaKeys(schema: z.ZodType): SchemaKey[] {
  const keys: SchemaKey[] = [];
  const walk = (shape: Readonly<Record<string, z.ZodType>>, prefix: string, present: boolean): void => {
    for (const [name, child] of Object.entries(shape)) {
      const path = prefix === '' ? name : `${prefix}.${name}`;
      const { inner, optional, filled, default: fallback } = unwrap(child);
      const kind = inner.type === 'object' ? 'object' : inner.type === 'array' ? 'list' : inner.type === 'record' ? 'map' : 'value';
      const alwaysPresent = present && (!optional || filled);
      keys.push({ path, optional, kind, alwaysPresent, ...(fallback === undefined ? {} : { default: fallback }) });
      if (inner.shape !== undefined) walk(inner.shape, path, alwaysPresent);
      if (inner.type === 'array' && inner.element !== undefined) {
        const element = unwrap(inner.element).inner;
        if (element.shape !== undefined) walk(element.shape, `${path}[]`, false);
      }
      if (inner.type === 'record' && inner.valueType !== undefined) {
        const value = unwrap(inner.valueType).inner;
        if (value.shape !== undefined) walk(value.shape, `${path}.*`, false);
      }
    }
  };
  const root = unwrap(schema).inner;
  if (root.shape === undefined) throw new Error('not an object schema');
  walk(root.shape, '', true);
  return keys;
}

/** A config each interceptor type accepts with its required keys only (a type not listed needs none). */
export const MINIMAL_CONFIGS: Readonly<Record<string, unknown>> = {
  audit: { path: '/var/log/cri-proxy/audit.log' },
  'image-policy': { rules: [] },
};

/** The value at a dotted path of a parsed document (no `[]` steps). */
export function valueAt(value: unknown, path: string): unknown {
  let current = value;
  for (const part of path.split('.')) {
    if (typeof current !== 'object' || current === null) return undefined;
    current = (current as Record<string, unknown>)[part];
  }
  return current;
}
