/** A flood of frames that carry nothing, bounded apart from the frame handling that counts them. */
import { ConnectionError, ErrorCode, Flag, FrameType, dataPayload, headersFragment } from './frames';

/**
 * DATA and HEADERS frames that carry nothing and end nothing cost work for no progress (CVE-2019-9518): only so
 * many in a row. (A split DATA frame's pieces always carry bytes; CONTINUATION frames have a limit of their own.)
 */
export class EmptyFrames {
  /** DATA and HEADERS frames in a row that carried nothing and ended nothing. */
  private inARow = 0;

  constructor(private readonly max: number) {}

  /** Counts a DATA or HEADERS frame; throws the connection error once too many in a row were empty. */
  count(type: number, flags: number, payload: Buffer): void {
    const carried = type === FrameType.DATA ? dataPayload(flags, payload) : headersFragment(flags, payload);
    if (carried.length > 0 || (flags & Flag.END_STREAM) !== 0) {
      this.inARow = 0;
      return;
    }
    const max = this.max;
    if (++this.inARow > max)
      throw new ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, `more than ${max} empty frames in a row`, 'emptyFrames');
  }
}
