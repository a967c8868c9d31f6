/**
 * The one change routing makes to a request it forwards: the RuntimeClass handler, renamed to what the chosen
 * backend knows it as. Done on the wire, so every other byte of the request goes out as kubelet sent it.
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

/** `request` with the handler at `field` set to `handler`; the very same buffer when it already is. */
export function rewriteHandler(request: Buffer, requestType: string, field: string, handler: string): Buffer {
  const numbers = numbersOf(requestType, field);
  try {
    if ((stringAt(request, numbers) ?? '') === handler) return request;
    return replaceStringAt(request, numbers, handler);
  } catch (err) {
    if (!(err instanceof WireFormatError)) throw err;
    throw new ProxyError('MALFORMED_REQUEST', `cannot decode ${requestType}: ${err.message}`, { cause: err });
  }
}
