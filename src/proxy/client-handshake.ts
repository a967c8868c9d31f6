import { CONNECTION_PREFACE, ConnectionError, ErrorCode, FRAME_HEADER_BYTES, FrameType } from './http2/frames';

/**
 * How a client connection starts (RFC 9113 §3.4): the connection preface, then a SETTINGS frame, within a time
 * and a byte budget. Until then the client is not admitted (it holds no calls, and counts as nothing idle).
 */
export class ClientHandshake {
  private phase: 'preface' | 'settings' | 'open' = 'preface';
  private prefaceSeen = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly maxBytes: number,
    timeoutMs: number,
    onTimeout: () => void,
  ) {
    this.timer = setTimeout(onTimeout, timeoutMs);
    this.timer.unref();
  }

  get done(): boolean {
    return this.phase === 'open';
  }

  /** What follows the preface in `bytes` (undefined while it is still arriving), or the error a bad preface is. */
  preface(bytes: Buffer): Buffer | ConnectionError | undefined {
    if (this.phase !== 'preface') return bytes;
    const take = Math.min(CONNECTION_PREFACE.length - this.prefaceSeen, bytes.length);
    if (!bytes.subarray(0, take).equals(CONNECTION_PREFACE.subarray(this.prefaceSeen, this.prefaceSeen + take))) {
      return new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'not an HTTP/2 client (bad connection preface)');
    }
    this.prefaceSeen += take;
    if (this.prefaceSeen < CONNECTION_PREFACE.length) return undefined;
    this.phase = 'settings';
    return bytes.subarray(take);
  }

  /** Too many bytes before admission: the preface and whatever part of the first SETTINGS frame has arrived. */
  overBudget(heldBytes: number): boolean {
    return !this.done && this.prefaceSeen + heldBytes > this.maxBytes;
  }

  /** Why a frame cannot be the client's first (it must be a SETTINGS frame within the budget), if it is. */
  refuseFirst(type: number, payloadLength: number): ConnectionError | 'handshakeBytes' | undefined {
    if (this.phase !== 'settings') return undefined;
    if (type !== FrameType.SETTINGS) return new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'the client preface must start with SETTINGS');
    if (CONNECTION_PREFACE.length + FRAME_HEADER_BYTES + payloadLength > this.maxBytes) return 'handshakeBytes';
    return undefined;
  }

  /** The client's SETTINGS arrived; true the first time (it is admitted now). */
  settled(): boolean {
    if (this.phase !== 'settings') return false;
    this.phase = 'open';
    clearTimeout(this.timer);
    return true;
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}
