import { formatGrpcTimeout } from './grpc-status';
import type { OutgoingMetadata } from './metadata';

/** The value of a pseudo-header (they come first in a header list). */
export function pseudoHeader(fields: readonly string[], name: string): string | undefined {
  for (let i = 0; i < fields.length; i += 2) {
    const field = fields[i] as string;
    if (field === name) return fields[i + 1];
    if (field.charCodeAt(0) !== 0x3a) return undefined;
  }
  return undefined;
}

/** Lowercase token characters (RFC 9110 §5.6.2 minus upper case, as HTTP/2 requires). */
const FIELD_NAME = /^:?[!#$%&'*+\-.^_`|~0-9a-z]+$/;
/** Control characters other than tab (RFC 9113 §8.2.1, as Go's HTTP/2 framer checks them). */
function hasControlCharacter(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return true;
  }
  return false;
}

/**
 * Why a request's header list is malformed, or undefined: names lowercase tokens, values without control
 * characters, pseudo-headers first, `:method` and `:path` present. As strict as the runtimes' own HTTP/2 reader
 * (Go's), no stricter: whatever containerd would take passes.
 */
export function malformedRequest(fields: readonly string[]): string | undefined {
  let regular = false;
  let path = false;
  let method = false;
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i] as string;
    if (!FIELD_NAME.test(name)) return `invalid header name "${name}"`;
    if (hasControlCharacter(fields[i + 1] as string)) return `invalid value for header "${name}"`;
    if (name.charCodeAt(0) === 0x3a) {
      if (regular) return `pseudo-header ${name} after regular headers`;
      if (name === ':path') path = fields[i + 1] !== '';
      if (name === ':method') method = true;
    } else {
      regular = true;
    }
  }
  if (!method || !path) return 'missing :method or :path';
  return undefined;
}

/** The last :authority found acceptable: a client sends the same one call after call. */
let lastAcceptable: string | undefined;

/** An :authority value every HTTP/2 implementation accepts (RFC 3986 authority characters). */
export function isAcceptableAuthority(value: string): boolean {
  if (value === lastAcceptable) return true;
  const acceptable = /^[A-Za-z0-9\-._~!$&'()*+,;=:@[\]%]*$/.test(value);
  if (acceptable) lastAcceptable = value;
  return acceptable;
}

/** What the runtime gets instead of an :authority it might refuse (kubelet sends the socket path). */
const REPLACEMENT_AUTHORITY = 'localhost';

export interface UpstreamChanges {
  /** Metadata the chain added or replaced. */
  readonly extra: OutgoingMetadata | undefined;
  /** The deadline left, when time spent in the proxy must be taken off it. */
  readonly remainingMs: number | undefined;
}

/**
 * The header list the runtime gets: the client's as received, except metadata the chain set, a `grpc-timeout`
 * shortened by the time spent in the proxy, and a socket-path `:authority` replaced by `localhost` (some HTTP/2
 * servers reset such streams). The same array comes back when nothing changes.
 */
export function upstreamFields(fields: readonly string[], changes: UpstreamChanges): readonly string[] {
  let out: string[] | undefined;
  const authority = pseudoHeader(fields, ':authority');
  if (authority !== undefined && !isAcceptableAuthority(authority)) out = replace(fields, ':authority', REPLACEMENT_AUTHORITY);
  if (changes.remainingMs !== undefined) out = replace(out ?? fields, 'grpc-timeout', formatGrpcTimeout(changes.remainingMs));
  if (changes.extra !== undefined && changes.extra.size > 0) out = changes.extra.applyTo(out ?? fields);
  return out ?? fields;
}

function replace(fields: readonly string[], name: string, value: string): string[] {
  const out = [...fields];
  for (let i = 0; i < out.length; i += 2) if (out[i] === name) out[i + 1] = value;
  return out;
}
