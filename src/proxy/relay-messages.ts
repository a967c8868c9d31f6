import { ProxyError, errorMessage } from '../errors';
import { decodeMessage, type DecodedMessage } from '../messages/codec';
import { MessageTooLargeError } from './grpc-frames';
import type { StreamMessage } from '../chain/types';

/** A message over `maxMessageBytes` in either direction: RESOURCE_EXHAUSTED saying which and how large. */
export function tooLarge(err: unknown, direction: 'request' | 'response'): ProxyError {
  if (err instanceof MessageTooLargeError) {
    return new ProxyError(
      'MESSAGE_TOO_LARGE',
      `cri-proxy: ${direction} message of ${err.size} bytes exceeds the limit of ${err.limit} bytes (maxMessageBytes)`,
    );
  }
  return new ProxyError('UPSTREAM_PROTOCOL', errorMessage(err));
}

/** Hands each whole response message to the observers, decoded only if one asks; their faults are only counted. */
export function observeWith(
  observers: readonly ((message: StreamMessage) => void)[],
  responseType: string | undefined,
  onFault: (error: unknown) => void,
): (bytes: Buffer, compressed: boolean) => void {
  return (bytes, compressed) => {
    let decoded: DecodedMessage | undefined;
    const message: StreamMessage = {
      bytes,
      decode: () => {
        if (compressed || responseType === undefined) return undefined;
        return (decoded ??= decodeMessage(responseType, bytes));
      },
    };
    for (const observer of observers) {
      try {
        observer(message);
      } catch (err) {
        // Observers are observational: a broken one must never disturb the stream.
        onFault(err);
      }
    }
  };
}
