import { ConnectionError, ErrorCode, StreamError } from './frames';

/**
 * What became of a stream that is not open, as far as one side knows (RFC 9113 §5.1): never opened (`idle`),
 * reset by the peer, ended by both sides, reset here, or closed too long ago to tell (`forgotten`).
 */
export type ClosedHow = 'idle' | 'peerReset' | 'ended' | 'localReset' | 'forgotten';

/** How the last few streams of a connection closed, so late frames on them get the answer the RFC asks for. */
export class RecentlyClosed {
  private readonly how = new Map<number, ClosedHow>();

  constructor(private readonly capacity: number) {}

  add(id: number, how: ClosedHow): void {
    this.how.delete(id);
    this.how.set(id, how);
    if (this.how.size > this.capacity) this.how.delete(this.how.keys().next().value as number);
  }

  get(id: number): ClosedHow | undefined {
    return this.how.get(id);
  }
}

/**
 * What a frame (`what`: its type's name) on a stream that is not open calls for (RFC 9113 §5.1), or undefined
 * when it is dropped: on an idle stream a connection error; after the peer's own RST_STREAM anything but PRIORITY
 * (and RST_STREAM, never answered with one) a stream error STREAM_CLOSED; after both sides' END_STREAM, DATA or
 * HEADERS a connection error STREAM_CLOSED (WINDOW_UPDATE and RST_STREAM may cross our END_STREAM). After a reset
 * of ours, frames the peer sent before it saw it are expected: dropped.
 */
export function closedStreamError(what: string, id: number, how: ClosedHow): ConnectionError | StreamError | undefined {
  switch (how) {
    case 'idle':
      return new ConnectionError(ErrorCode.PROTOCOL_ERROR, `${what} on idle stream ${id}`);
    case 'peerReset':
      return what === 'RST_STREAM' ? undefined : new StreamError(id, ErrorCode.STREAM_CLOSED, `${what} after the peer reset stream ${id}`);
    case 'ended':
      return what === 'DATA' || what === 'HEADERS'
        ? new ConnectionError(ErrorCode.STREAM_CLOSED, `${what} on closed stream ${id}`)
        : undefined;
    default:
      return undefined;
  }
}
