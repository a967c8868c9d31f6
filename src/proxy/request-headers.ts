import { formatGrpcTimeout } from './grpc-status';
import type { OutgoingMetadata } from '../chain/metadata';

/** The value of a pseudo-header (they come first in a header list). */
export function pseudoHeader(fields: readonly string[], name: string): string | undefined {
  for (let i = 0; i < fields.length; i += 2) {
    const field = fields[i] as string;
    if (field === name) return fields[i + 1];
    if (field.charCodeAt(0) !== 0x3a) return undefined;
  }
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

/**
 * What the runtime gets instead of an :authority it might refuse (kubelet sends the socket path), and on the
 * proxy's own calls.
 */
const RUNTIME_AUTHORITY = 'localhost';

/** The header list of a call the proxy makes on its own behalf; `timeoutMs` (at least 1 ms) bounds it when given. */
export function ownCallFields(path: string, timeoutMs: number | undefined, metadata: readonly string[]): string[] {
  const timeout = timeoutMs === undefined ? [] : ['grpc-timeout', formatGrpcTimeout(Math.max(1, timeoutMs))];
  return [
    ':method',
    'POST',
    ':scheme',
    'http',
    ':path',
    path,
    ':authority',
    RUNTIME_AUTHORITY,
    'content-type',
    'application/grpc',
    'te',
    'trailers',
    ...timeout,
    'user-agent',
    'cri-proxy',
    ...metadata,
  ];
}

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
  if (authority !== undefined && !isAcceptableAuthority(authority)) out = replace(fields, ':authority', RUNTIME_AUTHORITY);
  if (changes.remainingMs !== undefined) out = replace(out ?? fields, 'grpc-timeout', formatGrpcTimeout(changes.remainingMs));
  if (changes.extra !== undefined && changes.extra.size > 0) out = changes.extra.applyTo(out ?? fields);
  return out ?? fields;
}

function replace(fields: readonly string[], name: string, value: string): string[] {
  const out = [...fields];
  for (let i = 0; i < out.length; i += 2) if (out[i] === name) out[i + 1] = value;
  return out;
}
