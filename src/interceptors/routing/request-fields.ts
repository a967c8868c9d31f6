/**
 * What routing reads from a request, and the one change it makes to one: the RuntimeClass handler, renamed to
 * what the chosen backend knows it as. Both on the wire: nothing is decoded that routing does not need, and
 * every other byte of a rewritten request goes out as kubelet sent it.
 */
import { ProxyError } from '../../errors';
import { replaceStringAt, stringAt, WireFormatError } from '../../proxy/protobuf-wire';
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
