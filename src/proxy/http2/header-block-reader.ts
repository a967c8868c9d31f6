import { ConnectionError, ErrorCode, Flag, headersFragment } from './frames';
import { HpackDecoder, type HeaderBlock } from './hpack-decoder';

/** A header block once its last frame has arrived, decoded. */
export interface CompleteBlock {
  readonly streamId: number;
  readonly endStream: boolean;
  readonly block: HeaderBlock;
  /** The HEADERS frame's priority named its own stream (RFC 9113 §5.3.1). */
  readonly selfDependent: boolean;
}

interface BlockInProgress {
  readonly streamId: number;
  readonly flags: number;
  readonly fragments: Buffer[];
  bytes: number;
  readonly selfDependent: boolean;
}

/**
 * Header blocks as they arrive, HEADERS then CONTINUATION frames, joined and decoded with the connection's HPACK
 * context. An endless block is refused early, whether its frames are large (its bytes pass the header list limit,
 * which it can never decode below) or empty (too many frames): never buffered (CVE-2024-27316 and relatives).
 */
export class HeaderBlockReader {
  private readonly decoder = new HpackDecoder();
  private block: BlockInProgress | undefined;

  constructor(
    private readonly maxListBytes: number,
    private readonly maxContinuationFrames: number,
  ) {}

  /** A block is in progress: any frame but its CONTINUATION is a connection error. */
  get inProgress(): boolean {
    return this.block !== undefined;
  }

  /** Bytes of the block in progress. */
  get bytes(): number {
    return this.block?.bytes ?? 0;
  }

  headers(flags: number, streamId: number, payload: Buffer): CompleteBlock | undefined {
    if (streamId === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'HEADERS on stream 0');
    const fragment = headersFragment(flags, payload);
    const selfDependent = (flags & Flag.PRIORITY) !== 0 && (payload.readUInt32BE(flags & Flag.PADDED ? 1 : 0) & 0x7fffffff) === streamId;
    if (flags & Flag.END_HEADERS) return this.complete(streamId, flags, fragment, selfDependent);
    this.block = { streamId, flags, fragments: [fragment], bytes: fragment.length, selfDependent };
    return undefined;
  }

  continuation(flags: number, streamId: number, payload: Buffer): CompleteBlock | undefined {
    const block = this.block;
    if (block === undefined || block.streamId !== streamId) {
      throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, 'CONTINUATION without a header block in progress on its stream');
    }
    if (block.fragments.length > this.maxContinuationFrames) {
      const max = this.maxContinuationFrames;
      throw new ConnectionError(
        ErrorCode.ENHANCE_YOUR_CALM,
        `more than ${max} CONTINUATION frames in one header block`,
        'continuationFrames',
      );
    }
    block.fragments.push(payload);
    block.bytes += payload.length;
    if (block.bytes > this.maxListBytes) {
      throw new ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, `header block larger than ${this.maxListBytes} bytes`, 'headerListBytes');
    }
    if (!(flags & Flag.END_HEADERS)) return undefined;
    return this.complete(streamId, block.flags, Buffer.concat(block.fragments, block.bytes), block.selfDependent);
  }

  private complete(streamId: number, flags: number, fragment: Buffer, selfDependent: boolean): CompleteBlock {
    this.block = undefined;
    // Decoded whatever becomes of the stream: the HPACK context must stay in step with the peer's.
    const block = this.decoder.decode(fragment, this.maxListBytes);
    return { streamId, endStream: (flags & Flag.END_STREAM) !== 0, block, selfDependent };
  }
}
