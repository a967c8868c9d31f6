/** Sizes and timeouts end up in Buffer lengths and setTimeout, both of which misbehave past int32. */
export const MAX_INT32 = 2 ** 31 - 1;

/** A plain object (not null, not an array): what a YAML mapping parses to. */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** What stands in for a secret wherever one would otherwise be shown (audit records, `config print`). */
export const REDACTED = '[redacted]';
