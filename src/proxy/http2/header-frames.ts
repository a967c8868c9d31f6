import { FRAME_HEADER_BYTES, Flag, FrameType } from './frames';
import { frameHeader, writeFrameHeader } from './frame-writers';
import { maxEncodedLength, type HpackEncoder } from './hpack-encoder';

/**
 * A header block encoded straight behind room for its HEADERS frame header, so the common case (a block that
 * fits one frame) is one buffer; longer blocks continue in CONTINUATION frames.
 */
export function headerFrames(
  encoder: HpackEncoder,
  streamId: number,
  fields: readonly string[],
  endStream: boolean,
  maxFrameSize: number,
  neverIndexed?: readonly number[],
): Buffer[] {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + maxEncodedLength(fields));
  const end = encoder.encodeInto(fields, out, FRAME_HEADER_BYTES, neverIndexed);
  const length = end - FRAME_HEADER_BYTES;
  const streamFlag = endStream ? Flag.END_STREAM : 0;
  if (length <= maxFrameSize) {
    writeFrameHeader(out, 0, length, FrameType.HEADERS, streamFlag | Flag.END_HEADERS, streamId);
    return [out.subarray(0, end)];
  }
  writeFrameHeader(out, 0, maxFrameSize, FrameType.HEADERS, streamFlag, streamId);
  const frames: Buffer[] = [out.subarray(0, FRAME_HEADER_BYTES + maxFrameSize)];
  for (let at = FRAME_HEADER_BYTES + maxFrameSize; at < end; at += maxFrameSize) {
    const piece = out.subarray(at, Math.min(end, at + maxFrameSize));
    const last = at + piece.length >= end;
    frames.push(frameHeader(piece.length, FrameType.CONTINUATION, last ? Flag.END_HEADERS : 0, streamId), piece);
  }
  return frames;
}
