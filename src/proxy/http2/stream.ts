/** What the connection keeps per stream: windows, queued output, how far each side has got. */

/** Bytes to send on a stream once its flow-control windows allow; `onSent` credits whoever they came from. */
interface OutData {
  data: Buffer;
  readonly end: boolean;
  readonly onSent: ((bytes: number) => void) | undefined;
}
interface OutHeaders {
  readonly fields: readonly string[];
  readonly end: boolean;
  readonly neverIndexed: readonly number[] | undefined;
}
export type OutItem = OutData | OutHeaders;

/** Per-stream state the connection keeps; relay code extends it. */
export class Http2Stream {
  sendWindow: number;
  recvWindow: number;
  recvUncredited = 0;
  out: OutItem[] | undefined;
  /** We sent END_STREAM (or reset the stream). */
  localEnded = false;
  /** The peer sent END_STREAM (or reset the stream). */
  remoteEnded = false;
  /** Who reset the stream, if it was reset: frames arriving after it are treated as RFC 9113 §5.1 says. */
  resetBy: 'peer' | 'local' | undefined = undefined;
  closed = false;
  /** 0 until the stream is opened (a runtime may make new streams wait for a free slot). */
  id: number;

  constructor(id: number, sendWindow: number, recvWindow: number) {
    this.id = id;
    this.sendWindow = sendWindow;
    this.recvWindow = recvWindow;
  }
}
