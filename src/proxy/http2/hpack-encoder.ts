import { ENTRY_OVERHEAD } from './hpack-decoder';
import { STATIC_TABLE } from './hpack-static';

/**
 * One connection's HPACK encoding context. Strings go out as plain literals (no Huffman: a unix socket does not
 * need the bytes saved, and the CPU is better spent elsewhere). Fields that repeat call after call (`:path`,
 * `content-type`, …) are added to the dynamic table, so a steady stream of calls costs a few index bytes each;
 * per-call values (`grpc-timeout`, `traceparent`, anything unknown) are literals that leave the table alone.
 */

/** Headers whose values repeat across calls and are worth a table entry. */
const INDEXED_NAMES = new Set([
  ':method',
  ':scheme',
  ':path',
  ':authority',
  ':status',
  'content-type',
  'te',
  'user-agent',
  'grpc-accept-encoding',
  'grpc-encoding',
  'grpc-status',
  'accept-encoding',
]);

interface NameEntry {
  /** Static index of the name, 0 if not static. */
  readonly staticName: number;
  readonly staticValues: ReadonlyMap<string, number>;
}

const staticByName = new Map<string, NameEntry>();
for (const [i, [name, value]] of STATIC_TABLE.entries()) {
  const entry = staticByName.get(name) ?? { staticName: i + 1, staticValues: new Map<string, number>() };
  const values = entry.staticValues as Map<string, number>;
  if (!values.has(value)) values.set(value, i + 1);
  staticByName.set(name, entry);
}

export class HpackEncoder {
  /** name → value → insertion number, for entries still in the table. */
  private readonly dynamic = new Map<string, Map<string, number>>();
  /** Insertion number of the newest entry per name (for name references). */
  private readonly dynamicNames = new Map<string, number>();
  private readonly entries: { name: string; value: string; size: number }[] = [];
  private oldest = 0;
  private inserted = 0;
  private size = 0;
  private capacity = 4096;
  /** Set when the peer lowered SETTINGS_HEADER_TABLE_SIZE: announced at the start of the next block. */
  private pendingCapacity: number | undefined;

  /** The peer's SETTINGS_HEADER_TABLE_SIZE; the table is kept at most 4096 bytes whatever it allows. */
  setPeerTableSize(size: number): void {
    const capacity = Math.min(size, 4096);
    if (capacity === this.capacity) return;
    this.capacity = capacity;
    this.pendingCapacity = Math.min(this.pendingCapacity ?? capacity, capacity);
    this.evictTo(capacity);
  }

  /**
   * Encodes `fields` (alternating names and values) into `out` from `at`, which must have room for
   * `maxEncodedLength(fields)` bytes; returns the end offset.
   */
  encodeInto(fields: readonly string[], out: Buffer, at: number, neverIndexed?: readonly number[]): number {
    let offset = at;
    if (this.pendingCapacity !== undefined) {
      // A lowered table is announced at its minimum, then at the size in use (RFC 7541 §4.2).
      if (this.pendingCapacity < this.capacity) offset = writeInteger(out, offset, this.pendingCapacity, 5, 0x20);
      offset = writeInteger(out, offset, this.capacity, 5, 0x20);
      this.pendingCapacity = undefined;
    }
    for (let i = 0; i < fields.length; i += 2) {
      const name = fields[i] as string;
      const value = fields[i + 1] as string;
      const known = staticByName.get(name);
      const never = neverIndexed !== undefined && neverIndexed.includes(i);
      if (!never) {
        const index = known?.staticValues.get(value) ?? this.dynamicIndex(name, value);
        if (index !== undefined) {
          offset = writeInteger(out, offset, index, 7, 0x80);
          continue;
        }
      }
      const nameIndex = known?.staticName ?? this.dynamicNameIndex(name);
      const index = !never && INDEXED_NAMES.has(name) && name.length + value.length + ENTRY_OVERHEAD <= this.capacity / 2;
      // 0x40 literal with incremental indexing (6-bit), 0x10 never indexed, 0x00 without indexing (4-bit).
      if (index) offset = writeInteger(out, offset, nameIndex ?? 0, 6, 0x40);
      else offset = writeInteger(out, offset, nameIndex ?? 0, 4, never ? 0x10 : 0x00);
      if (nameIndex === undefined) offset = writeString(out, offset, name);
      offset = writeString(out, offset, value);
      if (index) this.insert(name, value);
    }
    return offset;
  }

  private dynamicIndex(name: string, value: string): number | undefined {
    const seq = this.dynamic.get(name)?.get(value);
    return seq === undefined ? undefined : STATIC_TABLE.length + this.inserted - seq;
  }

  private dynamicNameIndex(name: string): number | undefined {
    const seq = this.dynamicNames.get(name);
    return seq === undefined ? undefined : STATIC_TABLE.length + this.inserted - seq;
  }

  private insert(name: string, value: string): void {
    const size = name.length + value.length + ENTRY_OVERHEAD;
    if (size > this.capacity) return;
    this.evictTo(this.capacity - size);
    const seq = this.inserted++;
    this.entries.push({ name, value, size });
    this.size += size;
    let values = this.dynamic.get(name);
    if (!values) this.dynamic.set(name, (values = new Map<string, number>()));
    values.set(value, seq);
    this.dynamicNames.set(name, seq);
  }

  private evictTo(size: number): void {
    while (this.size > size) {
      const seq = this.inserted - (this.entries.length - this.oldest);
      const entry = this.entries[this.oldest++] as { name: string; value: string; size: number };
      this.size -= entry.size;
      const values = this.dynamic.get(entry.name);
      if (values?.get(entry.value) === seq) {
        values.delete(entry.value);
        if (values.size === 0) this.dynamic.delete(entry.name);
      }
      if (this.dynamicNames.get(entry.name) === seq) this.dynamicNames.delete(entry.name);
    }
    if (this.oldest > 64 && this.oldest * 2 > this.entries.length) {
      this.entries.splice(0, this.oldest);
      this.oldest = 0;
    }
  }
}

/** Room `encodeInto` may need for `fields` at most (a size update, then per field two literals). */
export function maxEncodedLength(fields: readonly string[]): number {
  let total = 12;
  for (const field of fields) total += field.length + 6;
  return total;
}

/** N-bit-prefix integer (RFC 7541 §5.1); `high` holds the bits above the prefix. */
export function writeInteger(out: Buffer, at: number, value: number, prefixBits: number, high: number): number {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out[at] = high | value;
    return at + 1;
  }
  out[at++] = high | max;
  let rest = value - max;
  while (rest >= 128) {
    out[at++] = (rest % 128) + 128;
    rest = Math.floor(rest / 128);
  }
  out[at++] = rest;
  return at;
}

function writeString(out: Buffer, at: number, text: string): number {
  const end = writeInteger(out, at, text.length, 7, 0);
  return end + out.write(text, end, 'latin1');
}
