/** The connection as its client streams see it, kept apart so that the stream does not import the connection. */
import type { ErrorCodeValue } from './http2/frames';

/** What a client stream needs of the connection it arrived on (the client connection implements it). */
export interface StreamHost<S> {
  consumed(stream: S, bytes: number): void;
  sendHeaders(stream: S, fields: readonly string[], end: boolean): void;
  sendData(stream: S, data: Buffer, end: boolean, onSent?: (bytes: number) => void): boolean;
  resetStream(stream: S, code: ErrorCodeValue): void;
  /** Accounts request bytes held for an interceptor; false once the connection's limit is exceeded. */
  holdBytes(bytes: number): boolean;
  readonly maxHeldBytes: number;
  callEnded(stream: S, heldBytes: number): void;
  readonly onObserverFault: (error: unknown) => void;
}
