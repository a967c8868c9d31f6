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

interface StaticName {
  /** Static index of the name. */
  readonly index: number;
  readonly values: ReadonlyMap<string, number>;
}

const staticByName = new Map<string, StaticName>();
for (const [i, [name, value]] of STATIC_TABLE.entries()) {
  const entry = staticByName.get(name) ?? { index: i + 1, values: new Map<string, number>() };
  const values = entry.values as Map<string, number>;
  if (!values.has(value)) values.set(value, i + 1);
  staticByName.set(name, entry);
}

/**
 * What the encoder knows of one header name, found with one lookup per field: its static entries, its entries in
 * the dynamic table, and the last value sent with it. Calls repeat their fields, and the values the decoder hands
 * on are the same strings call after call, so the last value usually answers on its own.
 */
class NameState {
  /** Insertion number of each value's newest entry still in the dynamic table. */
  dynamic: Map<string, number> | undefined;
  /** Insertion number of the newest entry with this name, -1 if none (or evicted). */
  newest = -1;
  /** The last value found in a table, and where: a static index, or an insertion number (then `lastStatic` is 0). */
  lastValue: string | undefined;
  lastStatic = 0;
  lastSeq = -1;

  constructor(
    readonly name: string,
    readonly staticName: number,
    readonly staticValues: ReadonlyMap<string, number> | undefined,
    /** Worth a table entry (see INDEXED_NAMES). */
    readonly indexable: boolean,
  ) {}
}

/** Names other than static and indexed ones remembered at most (see stateOf). */
const MAX_OTHER_NAMES = 256;

/** A header list encoded earlier without changing the table, and its encoding. */
interface RecentList {
  readonly fields: readonly string[];
  readonly encoded: Buffer;
  /** The table's generation: the encoding holds only while the table has not changed. */
  readonly generation: number;
}

const RECENT_LISTS = 8;
const RECENT_MAX_BYTES = 256;

export class HpackEncoder {
  private readonly names = new Map<string, NameState>();
  private otherNames = 0;
  /** Dynamic table entries, oldest first from `oldest`; entry `i` has insertion number `inserted - (entries.length - i)`. */
  private readonly entries: { readonly state: NameState; readonly value: string; readonly size: number }[] = [];
  private oldest = 0;
  private inserted = 0;
  private size = 0;
  private capacity = 4096;
  /** Set when the peer lowered SETTINGS_HEADER_TABLE_SIZE: announced at the start of the next block. */
  private pendingCapacity: number | undefined;
  /** Bumped by every change to the table. */
  private generation = 0;
  /**
   * Header lists relayed call after call are often the very same array (the decoder hands a repeated block's
   * fields out again): while the table is unchanged, such a list encodes to the same bytes as last time.
   */
  private readonly recent: (RecentList | undefined)[] = new Array<RecentList | undefined>(RECENT_LISTS).fill(undefined);
  private nextRecent = 0;

  /** The peer's SETTINGS_HEADER_TABLE_SIZE; the table is kept at most 4096 bytes whatever it allows. */
  setPeerTableSize(size: number): void {
    const capacity = Math.min(size, 4096);
    if (capacity === this.capacity) return;
    this.generation++;
    this.capacity = capacity;
    this.pendingCapacity = Math.min(this.pendingCapacity ?? capacity, capacity);
    this.evictTo(capacity);
  }

  /**
   * Encodes `fields` (alternating names and values) into `out` from `at`, which must have room for
   * `maxEncodedLength(fields)` bytes; returns the end offset. A list, once encoded, must not change.
   */
  encodeInto(fields: readonly string[], out: Buffer, at: number, neverIndexed?: readonly number[]): number {
    const plain = neverIndexed === undefined && this.pendingCapacity === undefined;
    if (plain) {
      for (const recent of this.recent) {
        if (recent?.fields !== fields || recent.generation !== this.generation) continue;
        out.set(recent.encoded, at);
        return at + recent.encoded.length;
      }
    }
    const generation = this.generation;
    const end = this.encodeFresh(fields, out, at, neverIndexed);
    if (plain && this.generation === generation && end - at <= RECENT_MAX_BYTES) {
      this.recent[this.nextRecent] = { fields, encoded: Buffer.from(out.subarray(at, end)), generation };
      this.nextRecent = (this.nextRecent + 1) % RECENT_LISTS;
    }
    return end;
  }

  private encodeFresh(fields: readonly string[], out: Buffer, at: number, neverIndexed: readonly number[] | undefined): number {
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
      const state = this.stateOf(name);
      const never = neverIndexed !== undefined && neverIndexed.includes(i);
      if (!never) {
        const index = this.indexOf(state, value);
        if (index > 0) {
          offset = writeInteger(out, offset, index, 7, 0x80);
          continue;
        }
      }
      const nameIndex = state.staticName > 0 ? state.staticName : state.newest >= 0 ? this.dynamicIndex(state.newest) : 0;
      const index = !never && state.indexable && name.length + value.length + ENTRY_OVERHEAD <= this.capacity / 2;
      // 0x40 literal with incremental indexing (6-bit), 0x10 never indexed, 0x00 without indexing (4-bit).
      if (index) offset = writeInteger(out, offset, nameIndex, 6, 0x40);
      else offset = writeInteger(out, offset, nameIndex, 4, never ? 0x10 : 0x00);
      if (nameIndex === 0) offset = writeString(out, offset, name);
      offset = writeString(out, offset, value);
      if (index) this.insert(state, value);
    }
    return offset;
  }

  private stateOf(name: string): NameState {
    let state = this.names.get(name);
    if (state === undefined) {
      const known = staticByName.get(name);
      state = new NameState(name, known?.index ?? 0, known?.values, INDEXED_NAMES.has(name));
      // Other names come from clients, any number of them: at most so many are remembered. They never enter the
      // dynamic table, so forgetting them loses nothing the table holds.
      if (known === undefined && !state.indexable && ++this.otherNames > MAX_OTHER_NAMES) {
        for (const [key, old] of this.names) if (old.staticName === 0 && !old.indexable) this.names.delete(key);
        this.otherNames = 1;
      }
      this.names.set(name, state);
    }
    return state;
  }

  /** The table index of (name, value), 0 if it has none. */
  private indexOf(state: NameState, value: string): number {
    if (value === state.lastValue) {
      if (state.lastStatic > 0) return state.lastStatic;
      if (state.lastSeq >= this.oldestSeq) return this.dynamicIndex(state.lastSeq);
    }
    const known = state.staticValues?.get(value);
    if (known !== undefined) {
      state.lastValue = value;
      state.lastStatic = known;
      return known;
    }
    const seq = state.dynamic?.get(value);
    if (seq === undefined) return 0;
    state.lastValue = value;
    state.lastStatic = 0;
    state.lastSeq = seq;
    return this.dynamicIndex(seq);
  }

  /** Insertion number of the oldest entry still in the table. */
  private get oldestSeq(): number {
    return this.inserted - (this.entries.length - this.oldest);
  }

  private dynamicIndex(seq: number): number {
    return STATIC_TABLE.length + this.inserted - seq;
  }

  private insert(state: NameState, value: string): void {
    const size = state.name.length + value.length + ENTRY_OVERHEAD;
    if (size > this.capacity) return;
    this.generation++;
    this.evictTo(this.capacity - size);
    const seq = this.inserted++;
    this.entries.push({ state, value, size });
    this.size += size;
    (state.dynamic ??= new Map<string, number>()).set(value, seq);
    state.newest = seq;
  }

  private evictTo(size: number): void {
    while (this.size > size) {
      const seq = this.oldestSeq;
      const entry = this.entries[this.oldest++] as { state: NameState; value: string; size: number };
      this.size -= entry.size;
      const state = entry.state;
      if (state.dynamic?.get(entry.value) === seq) {
        state.dynamic.delete(entry.value);
        if (state.dynamic.size === 0) state.dynamic = undefined;
      }
      if (state.newest === seq) state.newest = -1;
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
