/** Reading decoded request fields into audit record values: bounded, compact, never a secret by accident. */
import type { DecodedMessage } from '../messages/codec';

// Bounds on what one record may carry, so a huge exec script cannot make a huge line.
const MAX_STRING = 4096;
export const MAX_LIST = 256;

export function obj(value: unknown, key: string): DecodedMessage | undefined {
  if (typeof value !== 'object' || value === null || !Object.hasOwn(value, key)) return undefined;
  const inner = (value as Record<string, unknown>)[key];
  return typeof inner === 'object' && inner !== null && !Array.isArray(inner) ? (inner as DecodedMessage) : undefined;
}

/** The messages of a repeated field, at most MAX_LIST of them. */
export function list(value: unknown): DecodedMessage[] | undefined {
  if (!Array.isArray(value)) return undefined;
  return value.slice(0, MAX_LIST).filter((v): v is DecodedMessage => typeof v === 'object' && v !== null);
}

export function str(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? clip(value) : undefined;
}

export function strings(value: unknown): string[] | undefined {
  if (!Array.isArray(value)) return undefined;
  return value.slice(0, MAX_LIST).map((v) => clip(typeof v === 'string' ? v : ''));
}

/** int64 fields decode as strings; small ones read better as numbers. Zero (the default) is left out. */
export function num(value: unknown): number | string | undefined {
  if (typeof value === 'number') return value === 0 ? undefined : value;
  if (typeof value !== 'string' || value === '' || value === '0') return undefined;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : clip(value);
}

/** A number where zero means something (a uid, a host id): absent reads as 0, as the runtime reads it. */
export function id(value: unknown): number | string {
  return num(value) ?? 0;
}

export function numbers(value: unknown): (number | string)[] | undefined {
  if (!Array.isArray(value)) return undefined;
  return value.slice(0, MAX_LIST).map(id);
}

/** True, or undefined: a flag is recorded only when set. */
export function flag(value: unknown): true | undefined {
  return value === true ? true : undefined;
}

/** An enum's name; its first value (the default, which decodes as absent) is left out. */
export function enumName(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** A string map (sysctls, options), keys and values clipped, at most MAX_LIST entries. */
export function stringMap(
  map: DecodedMessage | undefined,
  redacted: (key: string) => boolean = () => false,
  marker = '',
): Record<string, string> | undefined {
  if (!map) return undefined;
  const out: Record<string, string> = {};
  let count = 0;
  for (const [key, value] of Object.entries(map)) {
    if (count++ >= MAX_LIST) break;
    out[clip(key)] = redacted(key) ? marker : clip(typeof value === 'string' ? value : '');
  }
  return count > 0 ? out : undefined;
}

export function clip(s: string): string {
  return s.length <= MAX_STRING ? s : `${s.slice(0, MAX_STRING)}…[${s.length - MAX_STRING} more chars]`;
}

export function set(target: Record<string, unknown>, key: string, value: unknown): void {
  if (value !== undefined && value !== '') target[key] = value;
}

/** The object without its undefined members, or undefined if nothing is left. */
export function compact(fields: Record<string, unknown>): Record<string, unknown> | undefined {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) if (value !== undefined) out[key] = value;
  return Object.keys(out).length > 0 ? out : undefined;
}
