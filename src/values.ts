/** Sizes and timeouts end up in Buffer lengths and setTimeout, both of which misbehave past int32. */
export const MAX_INT32 = 2 ** 31 - 1;

/** A plain object (not null, not an array): what a YAML mapping parses to. */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** What stands in for a secret wherever one would otherwise be shown (audit records, `config print`). */
export const REDACTED = '[redacted]';

/** The string at a dotted path (e.g. `config.metadata.name`), or undefined if absent or not a string. */
export function fieldAt(msg: Readonly<Record<string, unknown>> | undefined, path: string): string | undefined {
  let value: unknown = msg;
  let start = 0;
  while (value !== null && typeof value === 'object') {
    const dot = path.indexOf('.', start);
    const key = dot === -1 ? path.slice(start) : path.slice(start, dot);
    // Own properties only: a path must never reach into Object.prototype.
    if (!Object.hasOwn(value, key)) return undefined;
    value = (value as Record<string, unknown>)[key];
    if (dot === -1) return typeof value === 'string' ? value : undefined;
    start = dot + 1;
  }
  return undefined;
}
