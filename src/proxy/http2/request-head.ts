import { ErrorCode, StreamError } from './frames';
import type { HeaderBlock } from './hpack-decoder';

/**
 * What RFC 9113 §8 calls a malformed request, checked in one pass over the decoded header list: an intermediary
 * must not forward one (§8.1.1), so the stream is reset with PROTOCOL_ERROR instead.
 */

/** What the data plane reads of a well-formed request's header list. */
export interface RequestHead {
  /** The one `:path` (the method table, interceptors and the runtime all see this same value). */
  readonly path: string;
  /** The declared `content-length`, or -1 when there is none. */
  readonly contentLength: number;
}

const METHOD = 1;
const SCHEME = 2;
const PATH = 4;
const AUTHORITY = 8;

/** Token characters (RFC 9110 §5.6.2) without upper case, which HTTP/2 forbids in names (§8.2.1). */
const NAME_CHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz") NAME_CHAR[c.charCodeAt(0)] = 1;

function isFieldName(name: string): boolean {
  if (name.length === 0) return false;
  for (let i = 0; i < name.length; i++) if (NAME_CHAR[name.charCodeAt(i)] !== 1) return false;
  return true;
}

/**
 * A field value HTTP/2 allows (§8.2.1): no NUL, CR or LF anywhere, no space or tab at either end. Other control
 * characters are refused too, as the runtimes' own HTTP/2 reader (Go's) refuses them.
 */
function isFieldValue(value: string): boolean {
  const last = value.length - 1;
  for (let i = 0; i <= last; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) {
      if (c !== 0x09 || i === 0 || i === last) return false;
    } else if (c === 0x20 && (i === 0 || i === last)) {
      return false;
    }
  }
  return true;
}

/** The bit of a request pseudo-header (§8.3.1), 0 for any other name (`:status`, `:protocol`, unknown). */
function pseudoBit(name: string): number {
  switch (name) {
    case ':method':
      return METHOD;
    case ':scheme':
      return SCHEME;
    case ':path':
      return PATH;
    case ':authority':
      return AUTHORITY;
    default:
      return 0;
  }
}

/** A `content-length` value as a number, or -1 if it is not one (digits only, RFC 9110 §8.6). */
function parseLength(value: string): number {
  if (value.length === 0 || value.length > 15) return -1;
  let n = 0;
  for (let i = 0; i < value.length; i++) {
    const d = value.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

/**
 * Why a regular field is not allowed in an HTTP/2 message (§8.2.1, §8.2.2), or undefined. Connection-specific
 * fields and a `te` other than "trailers" are refused; the name must be a lower-case token.
 */
function regularFieldProblem(name: string, value: string): string | undefined {
  if (!isFieldName(name)) return `invalid field name "${name}"`;
  if (!isFieldValue(value)) return `invalid value for field "${name}"`;
  switch (name) {
    case 'connection':
    case 'keep-alive':
    case 'proxy-connection':
    case 'transfer-encoding':
    case 'upgrade':
      return `connection-specific field "${name}"`;
    case 'te':
      return value === 'trailers' ? undefined : `te "${value}" (only "trailers" is allowed)`;
    default:
      return undefined;
  }
}

/** Heads of header lists the decoder hands out again (repeated blocks): each is read once. */
const sharedHeads = new WeakMap<readonly string[], RequestHead>();

/** `readRequestHead` of a block's fields, remembered with them when the decoder may hand the same block out again. */
export function requestHeadOf(block: HeaderBlock): RequestHead | string {
  const known = sharedHeads.get(block.fields);
  if (known !== undefined) return known;
  const head = readRequestHead(block.fields);
  if (block.shared && typeof head !== 'string') sharedHeads.set(block.fields, head);
  return head;
}

/**
 * The request's path and declared length, or why its header list is malformed: a pseudo-header that is not a
 * request's (`:status`, unknown ones), repeated, or after a regular field; `:method`, `:scheme` or `:path`
 * missing (CONNECT, which omits them, is not served); an empty `:path` or one not starting with "/"; a
 * connection-specific field, a `te` other than "trailers", an invalid name (upper case included) or value;
 * `content-length` that is not a number or given twice with different values.
 */
export function readRequestHead(fields: readonly string[]): RequestHead | string {
  let seen = 0;
  let regular = false;
  let path = '';
  let method = '';
  let contentLength = -1;
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i] as string;
    const value = fields[i + 1] as string;
    if (name.charCodeAt(0) === 0x3a) {
      const bit = pseudoBit(name);
      if (bit === 0) return `pseudo-header ${name} is not allowed in a request`;
      if (regular) return `pseudo-header ${name} after regular fields`;
      if ((seen & bit) !== 0) return `pseudo-header ${name} repeated`;
      if (!isFieldValue(value)) return `invalid value for ${name}`;
      seen |= bit;
      if (bit === PATH) path = value;
      else if (bit === METHOD) method = value;
      continue;
    }
    regular = true;
    const problem = regularFieldProblem(name, value);
    if (problem !== undefined) return problem;
    if (name === 'content-length') {
      const length = parseLength(value);
      if (length < 0 || (contentLength >= 0 && length !== contentLength)) return `invalid content-length "${value}"`;
      contentLength = length;
    }
  }
  if ((seen & METHOD) === 0) return 'missing :method';
  if ((seen & SCHEME) === 0) return 'missing :scheme';
  if ((seen & PATH) === 0) return 'missing :path';
  if (path.charCodeAt(0) !== 0x2f && !(path === '*' && method === 'OPTIONS')) return `invalid :path "${path}"`;
  return { path, contentLength };
}

/** Why a request's trailers are malformed (no pseudo-headers, §8.1; the field rules of §8.2), or undefined. */
export function trailersProblem(fields: readonly string[]): string | undefined {
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i] as string;
    if (name.charCodeAt(0) === 0x3a) return `pseudo-header ${name} in trailers`;
    const problem = regularFieldProblem(name, fields[i + 1] as string);
    if (problem !== undefined) return `${problem} in trailers`;
  }
  return undefined;
}

/**
 * Request DATA counted against its declared `content-length` (RFC 9113 §8.1.1): more than declared, or a
 * different total at the end, makes the request malformed (a stream error, before the bytes go anywhere).
 * Returns the bytes received so far.
 */
export function countRequestData(id: number, head: RequestHead, received: number, bytes: number, end: boolean): number {
  const declared = head.contentLength;
  if (declared < 0) return received;
  const total = received + bytes;
  if (total > declared || (end && total !== declared)) {
    throw new StreamError(id, ErrorCode.PROTOCOL_ERROR, `malformed request: content-length ${declared}, ${total} bytes of DATA`);
  }
  return total;
}
