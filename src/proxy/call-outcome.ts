import { GrpcStatus, type ProxyError } from '../errors';
import type { CallOutcome } from '../chain/types';

/** A status the proxy produces itself, carrying the stable error code. */
export function outcomeOfError(error: ProxyError): CallOutcome {
  return { code: error.grpcStatus, message: error.message, fromProxy: true, errorCode: error.code };
}

export const CANCELLED_OUTCOME: CallOutcome = Object.freeze({
  code: GrpcStatus.CANCELLED,
  message: 'the client cancelled the call',
  fromProxy: true,
  errorCode: 'CANCELLED',
});
