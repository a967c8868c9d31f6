/**
 * A request's string fields read, and one rewritten, on the wire (routing reads owner IDs and renames a
 * RuntimeClass handler for the chosen backend): nothing else is decoded, and every other byte of a rewritten
 * request goes out as the client sent it.
 */
import { ProxyError } from '../errors';
import { replaceStringAt, stringAt, wireFields, WireFormatError } from './protobuf-wire';
import { resolvePath } from './wire-paths';

const paths = new Map<string, readonly number[]>();

function numbersOf(requestType: string, field: string): readonly number[] {
  const key = `${requestType}\0${field}`;
  let numbers = paths.get(key);
  if (numbers === undefined) {
    numbers = resolvePath(requestType, field).numbers;
    paths.set(key, numbers);
  }
  return numbers;
}

function onRequest<T>(requestType: string, read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (!(err instanceof WireFormatError)) throw err;
    throw new ProxyError('MALFORMED_REQUEST', `cannot decode ${requestType}: ${err.message}`, { cause: err });
  }
}

/** The string at `field` of the request ("" when unset). */
export function requestString(request: Buffer, requestType: string, field: string): string {
  return onRequest(requestType, () => stringAt(request, numbersOf(requestType, field)) ?? '');
}

/** `request` with the handler at `field` renamed by `translate`; the very same buffer when the name stays. */
export function rewriteHandler(request: Buffer, requestType: string, field: string, translate: (handler: string) => string): Buffer {
  const numbers = numbersOf(requestType, field);
  return onRequest(requestType, () => {
    const current = stringAt(request, numbers) ?? '';
    const handler = translate(current);
    return handler === current ? request : replaceStringAt(request, numbers, handler);
  });
}

/**
 * The string in field number 1 of a message whose schema is not known (a method outside the table), read from the
 * wire: undefined when that field is absent, empty, not length-delimited, longer than `maxBytes`, or the bytes are
 * no protobuf message.
 */
export function firstFieldString(message: Buffer | undefined, maxBytes: number): string | undefined {
  if (message === undefined) return undefined;
  try {
    const field = wireFields(message).find((f) => f.number === 1);
    if (field === undefined || field.wireType !== 2 || field.end === field.valueStart || field.end - field.valueStart > maxBytes) {
      return undefined;
    }
    return message.subarray(field.valueStart, field.end).toString('utf8');
  } catch (err) {
    if (err instanceof WireFormatError) return undefined;
    throw err;
  }
}
