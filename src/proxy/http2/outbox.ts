import { FRAME_HEADER_BYTES } from './frames';
import { writeFrameHeader } from './frame-writers';

/**
 * What one connection sends until the end of the tick. Frame headers, header blocks and control frames are
 * written straight into a chunk of memory the outbox owns (no buffer per frame, no join at flush); relayed data
 * of any size goes out as the buffer it arrived in, never copied. A tick's bytes leave as one write.
 *
 * A chunk is carved front to back and never reused: each flush hands the socket a view of the part written since
 * the last one, and the next bytes go after it, so nothing the socket still holds is ever overwritten.
 */

/** Size of each chunk: room for a few hundred calls' headers. */
const CHUNK_BYTES = 16 * 1024;
/** Data smaller than this is copied into the chunk (a copy costs less than one more piece to write). */
const COPY_BELOW_BYTES = 2048;

const EMPTY = Buffer.alloc(0);

export class Outbox {
  private chunk: Buffer = EMPTY;
  /** Where the bytes not yet handed out start in `chunk`, and where the next byte goes. */
  private start = 0;
  private end = 0;
  /** Bytes handed out already, in order: views of chunks, and relayed buffers. */
  private pieces: Buffer[] = [];
  /** Bytes queued in all. */
  bytes = 0;

  /**
   * The chunk to write `length` bytes into, at `at`; `commit` them once written. The chunk is not to be kept:
   * another reservation may replace it.
   */
  reserve(length: number): Buffer {
    if (this.end + length > this.chunk.length) {
      this.cut();
      this.chunk = Buffer.allocUnsafeSlow(Math.max(CHUNK_BYTES, length));
      this.start = this.end = 0;
    }
    return this.chunk;
  }

  /** Where the next reserved bytes go. */
  get at(): number {
    return this.end;
  }

  commit(length: number): void {
    this.end += length;
    this.bytes += length;
  }

  /** A frame header, written straight into the chunk. */
  frameHeader(length: number, type: number, flags: number, streamId: number): void {
    const chunk = this.reserve(FRAME_HEADER_BYTES);
    writeFrameHeader(chunk, this.end, length, type, flags, streamId);
    this.commit(FRAME_HEADER_BYTES);
  }

  /** Queues `bytes`: copied when small, kept as they are otherwise. */
  append(bytes: Buffer): void {
    const length = bytes.length;
    if (length < COPY_BELOW_BYTES) {
      const chunk = this.reserve(length);
      bytes.copy(chunk, this.end);
      this.commit(length);
      return;
    }
    this.cut();
    this.pieces.push(bytes);
    this.bytes += length;
  }

  /** Everything queued, in order; the outbox is then empty. */
  take(): Buffer[] {
    this.cut();
    const pieces = this.pieces;
    this.pieces = [];
    this.bytes = 0;
    return pieces;
  }

  private cut(): void {
    if (this.end === this.start) return;
    this.pieces.push(this.chunk.subarray(this.start, this.end));
    this.start = this.end;
  }
}
