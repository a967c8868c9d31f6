import { GrpcStatus, type ProxyErrorCode } from '../errors';

/** grpc-message is percent-encoded: bytes outside printable ASCII, and '%' itself. */
export function encodeGrpcMessage(message: string): string {
  let plain = true;
  for (let i = 0; i < message.length; i++) {
    const c = message.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) {
      plain = false;
      break;
    }
  }
  if (plain) return message;
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte < 0x20 || byte > 0x7e || byte === 0x25 ? '%' + byte.toString(16).toUpperCase().padStart(2, '0') : String.fromCharCode(byte);
  }
  return out;
}

export function decodeGrpcMessage(encoded: string): string {
  if (!encoded.includes('%')) return encoded;
  try {
    return decodeURIComponent(encoded);
  } catch {
    return encoded;
  }
}

/** `grpc-timeout` value ("100m", "5S", …) in milliseconds; undefined when absent or malformed. */
export function parseGrpcTimeout(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string' || value.length < 2 || value.length > 9) return undefined;
  const amount = Number(value.slice(0, -1));
  if (!Number.isInteger(amount) || amount < 0) return undefined;
  switch (value[value.length - 1]) {
    case 'H':
      return amount * 3_600_000;
    case 'M':
      return amount * 60_000;
    case 'S':
      return amount * 1000;
    case 'm':
      return amount;
    case 'u':
      return amount / 1000;
    case 'n':
      return amount / 1_000_000;
    default:
      return undefined;
  }
}

export function formatGrpcTimeout(ms: number): string {
  // At most 8 digits; milliseconds cover 27 hours, beyond that whole seconds.
  const whole = Math.max(0, Math.ceil(ms));
  return whole < 100_000_000 ? `${whole}m` : `${Math.ceil(whole / 1000)}S`;
}

/** Response headers of a call the proxy answers itself with messages. */
export const RESPONSE_FIELDS: readonly string[] = Object.freeze([':status', '200', 'content-type', 'application/grpc']);

/**
 * The trailer that marks a status the proxy produced itself with its stable error code (`UPSTREAM_UNAVAILABLE`),
 * so that a client can tell it from a runtime's status, which is relayed as it came.
 */
export const PROXY_ERROR_TRAILER = 'cri-proxy-error';

/** A status as a header list: trailers, or a whole trailers-only response when `alone`; `errorCode` for the proxy's own. */
export function statusFields(code: number, message: string, alone: boolean, errorCode?: ProxyErrorCode): string[] {
  const status = ['grpc-status', String(code), 'grpc-message', encodeGrpcMessage(message)];
  if (errorCode !== undefined) status.push(PROXY_ERROR_TRAILER, errorCode);
  return alone ? [...RESPONSE_FIELDS, ...status] : status;
}

/** grpc-status / grpc-message from a header list (trailers, or a trailers-only response); no status is UNKNOWN. */
export function readStatusFields(fields: readonly string[]): { code: number; message: string } {
  let raw: string | undefined;
  let message: string | undefined;
  for (let i = 0; i < fields.length; i += 2) {
    if (fields[i] === 'grpc-status') raw ??= fields[i + 1];
    else if (fields[i] === 'grpc-message') message ??= fields[i + 1];
  }
  const code = raw === undefined ? Number.NaN : Number.parseInt(raw, 10);
  return {
    code: Number.isInteger(code) ? code : GrpcStatus.UNKNOWN,
    message: message !== undefined ? decodeGrpcMessage(message) : Number.isInteger(code) ? '' : 'missing grpc-status',
  };
}

/** Trailers as HTTP/2 allows them: no pseudo-headers. */
export function withoutPseudoHeaders(fields: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < fields.length; i += 2)
    if (!(fields[i] as string).startsWith(':')) out.push(fields[i] as string, fields[i + 1] as string);
  return out;
}

/** A trailers-only response carrying `fields`: kept as they are if they already are one (a runtime's). */
export function asTrailersOnly(fields: readonly string[]): readonly string[] {
  return fields[0] === ':status' ? fields : [...RESPONSE_FIELDS, ...fields];
}
