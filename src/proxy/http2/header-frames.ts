import { FRAME_HEADER_BYTES, Flag, FrameType } from './frames';
import { frameHeader, writeFrameHeader } from './frame-writers';
import { maxEncodedLength, type HpackEncoder } from './hpack-encoder';
import type { Outbox } from './outbox';

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

/**
 * The same frames encoded straight into an outbox (the relay's per-tick output): no buffer of their own unless the
 * block is longer than one frame.
 */
export function writeHeaderFrames(
  outbox: Outbox,
  encoder: HpackEncoder,
  streamId: number,
  fields: readonly string[],
  endStream: boolean,
  maxFrameSize: number,
  neverIndexed: readonly number[] | undefined,
): void {
  const chunk = outbox.reserve(FRAME_HEADER_BYTES + maxEncodedLength(fields));
  const at = outbox.at;
  const blockEnd = encoder.encodeInto(fields, chunk, at + FRAME_HEADER_BYTES, neverIndexed);
  const length = blockEnd - at - FRAME_HEADER_BYTES;
  const streamFlag = endStream ? Flag.END_STREAM : 0;
  if (length <= maxFrameSize) {
    writeFrameHeader(chunk, at, length, FrameType.HEADERS, streamFlag | Flag.END_HEADERS, streamId);
    outbox.commit(FRAME_HEADER_BYTES + length);
    return;
  }
  // Rare (a block over 16 KB): the rest of the block is copied out before its CONTINUATION frames are written.
  const rest = Buffer.from(chunk.subarray(at + FRAME_HEADER_BYTES + maxFrameSize, blockEnd));
  writeFrameHeader(chunk, at, maxFrameSize, FrameType.HEADERS, streamFlag, streamId);
  outbox.commit(FRAME_HEADER_BYTES + maxFrameSize);
  for (let from = 0; from < rest.length; from += maxFrameSize) {
    const piece = rest.subarray(from, Math.min(rest.length, from + maxFrameSize));
    const last = from + piece.length >= rest.length;
    outbox.frameHeader(piece.length, FrameType.CONTINUATION, last ? Flag.END_HEADERS : 0, streamId);
    outbox.append(piece);
  }
}
