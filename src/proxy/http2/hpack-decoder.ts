import { ConnectionError, ErrorCode } from './frames';
import { decodeHuffman } from './hpack-huffman';
import { STATIC_TABLE } from './hpack-static';

/** An entry's size for table accounting and header-list limits (RFC 7541 §4.1). */
export const ENTRY_OVERHEAD = 32;

/**
 * A decoded header block: names and values alternate (`[name0, value0, name1, value1, …]`), as latin1 strings
 * so every byte survives re-encoding unchanged.
 */
export interface HeaderBlock {
  /** Shared with later identical blocks (see HpackDecoder): never to be changed. */
  readonly fields: readonly string[];
  /** The header list size (RFC 9113 §6.5.2): name + value + 32 per field, counted even past the limit. */
  readonly listBytes: number;
  /** Fields past the limit were counted but not kept. */
  readonly overLimit: boolean;
  /** Positions (in `fields`, of the name) of fields sent as never-indexed: they must stay so when relayed. */
  readonly neverIndexed: readonly number[] | undefined;
  /**
   * The decoder may hand this very block out again for identical bytes (see HpackDecoder): what is worked out from
   * its fields can be remembered with them.
   */
  readonly shared: boolean;
}

function compressionError(message: string): ConnectionError {
  return new ConnectionError(ErrorCode.COMPRESSION_ERROR, message);
}

/** A block decoded earlier that left the table as it found it, with the bytes it came from. */
interface RecentBlock {
  readonly bytes: Buffer;
  readonly decoded: HeaderBlock;
  readonly maxListBytes: number;
  /** The table's generation when it was decoded: the block decodes the same only while the table has not changed. */
  readonly generation: number;
}

/** Blocks remembered per decoder, and the longest one worth remembering. */
const RECENT_BLOCKS = 8;
const RECENT_MAX_BYTES = 256;

/**
 * One connection's HPACK decoding context (RFC 7541 §3). Errors are connection errors (COMPRESSION_ERROR).
 *
 * Calls repeat their header blocks byte for byte (a runtime's response headers and trailers, a client's request
 * headers whose values are all in the table or sent as literals that are not indexed): a block identical to one
 * of the last few, decoded while the table was as it is now, decodes to the same fields, which are handed out
 * again instead of being decoded anew.
 */
export class HpackDecoder {
  /** Oldest first; the newest entry is dynamic index 1 (table index 62). */
  private readonly names: string[] = [];
  private readonly values: string[] = [];
  private oldest = 0;
  private size = 0;
  private capacity: number;
  private offset = 0;
  /** Bumped by every change to the dynamic table. */
  private generation = 0;
  private readonly recent: (RecentBlock | undefined)[] = new Array<RecentBlock | undefined>(RECENT_BLOCKS).fill(undefined);
  private nextRecent = 0;

  /** `limit`: the SETTINGS_HEADER_TABLE_SIZE this side announced. */
  constructor(private readonly limit = 4096) {
    this.capacity = limit;
  }

  get tableSize(): number {
    return this.size;
  }

  get tableEntries(): number {
    return this.names.length - this.oldest;
  }

  decode(block: Buffer, maxListBytes: number): HeaderBlock {
    const known = this.recall(block, maxListBytes);
    if (known !== undefined) return known;
    const generation = this.generation;
    const decoded = this.decodeFresh(block, maxListBytes);
    if (this.generation !== generation || decoded.overLimit || block.length > RECENT_MAX_BYTES) return decoded;
    const shared = { ...decoded, shared: true };
    this.recent[this.nextRecent] = { bytes: Buffer.from(block), decoded: shared, maxListBytes, generation };
    this.nextRecent = (this.nextRecent + 1) % RECENT_BLOCKS;
    return shared;
  }

  /** The fields of a block decoded before from the same bytes, while the table was as it is now. */
  private recall(block: Buffer, maxListBytes: number): HeaderBlock | undefined {
    const length = block.length;
    for (const recent of this.recent) {
      if (recent === undefined || recent.generation !== this.generation || recent.maxListBytes !== maxListBytes) continue;
      const bytes = recent.bytes;
      if (bytes.length !== length) continue;
      let i = 0;
      while (i < length && bytes[i] === block[i]) i++;
      if (i === length) return recent.decoded;
    }
    return undefined;
  }

  private decodeFresh(block: Buffer, maxListBytes: number): HeaderBlock {
    const fields: string[] = [];
    let neverIndexed: number[] | undefined;
    let listBytes = 0;
    let overLimit = false;
    let sawField = false;
    this.offset = 0;
    while (this.offset < block.length) {
      const first = block[this.offset] as number;
      let name: string;
      let value: string;
      if (first & 0x80) {
        const index = this.integer(block, 7);
        if (index === 0) throw compressionError('indexed header field with index 0');
        [name, value] = this.entry(index);
      } else if ((first & 0xe0) === 0x20) {
        if (sawField) throw compressionError('dynamic table size update after the first header field');
        const size = this.integer(block, 5);
        if (size > this.limit) throw compressionError(`dynamic table size update to ${size} exceeds the limit ${this.limit}`);
        this.capacity = size;
        this.evictTo(size);
        this.generation++;
        continue;
      } else {
        const incremental = (first & 0xc0) === 0x40;
        const nameIndex = this.integer(block, incremental ? 6 : 4);
        name = nameIndex === 0 ? this.string(block) : this.entry(nameIndex)[0];
        value = this.string(block);
        if (incremental) this.insert(name, value);
        else if (first & 0x10) (neverIndexed ??= []).push(fields.length);
      }
      sawField = true;
      listBytes += name.length + value.length + ENTRY_OVERHEAD;
      if (listBytes > maxListBytes) overLimit = true;
      else fields.push(name, value);
    }
    return { fields, listBytes, overLimit, neverIndexed, shared: false };
  }

  private entry(index: number): readonly [string, string] {
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1] as readonly [string, string];
    const position = this.names.length - (index - STATIC_TABLE.length);
    if (position < this.oldest) throw compressionError(`header table index ${index} is out of range`);
    return [this.names[position] as string, this.values[position] as string];
  }

  private insert(name: string, value: string): void {
    this.generation++;
    const entrySize = name.length + value.length + ENTRY_OVERHEAD;
    if (entrySize > this.capacity) {
      // A too-large entry empties the table and is not added (RFC 7541 §4.4).
      this.evictTo(0);
      return;
    }
    this.evictTo(this.capacity - entrySize);
    this.names.push(name);
    this.values.push(value);
    this.size += entrySize;
  }

  private evictTo(size: number): void {
    while (this.size > size) {
      this.size -= (this.names[this.oldest] as string).length + (this.values[this.oldest] as string).length + ENTRY_OVERHEAD;
      this.oldest++;
    }
    // Compact now and then so the arrays do not grow without bound.
    if (this.oldest > 64 && this.oldest * 2 > this.names.length) {
      this.names.splice(0, this.oldest);
      this.values.splice(0, this.oldest);
      this.oldest = 0;
    }
  }

  /** An N-bit-prefix integer (RFC 7541 §5.1); at most 2^28 - 1, plenty for any size or index here. */
  private integer(block: Buffer, prefixBits: number): number {
    const max = (1 << prefixBits) - 1;
    let value = (block[this.offset++] as number) & max;
    if (value < max) return value;
    let shift = 0;
    for (;;) {
      if (this.offset >= block.length) throw compressionError('header block ends inside an integer');
      const byte = block[this.offset++] as number;
      value += (byte & 0x7f) * 2 ** shift;
      if (!(byte & 0x80)) return value;
      shift += 7;
      if (shift > 21) throw compressionError('integer in header block is too large');
    }
  }

  private string(block: Buffer): string {
    if (this.offset >= block.length) throw compressionError('header block ends before a string');
    const huffman = ((block[this.offset] as number) & 0x80) !== 0;
    const length = this.integer(block, 7);
    const start = this.offset;
    const end = start + length;
    if (end > block.length) throw compressionError('string literal runs past the end of the header block');
    this.offset = end;
    return huffman ? decodeHuffman(block, start, end) : block.toString('latin1', start, end);
  }
}
