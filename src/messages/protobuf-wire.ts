/**
 * The protobuf wire format read and written directly, for answers built from several runtimes' messages: a
 * repeated field's items are carried over as the exact bytes each runtime sent, so nothing in them (fields this
 * schema does not know included) is lost or re-encoded.
 */
const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const FIXED32 = 5;

/** One field entry of a message: `bytes.subarray(start, end)` is the whole entry (tag and value). */
export interface WireField {
  readonly number: number;
  readonly wireType: number;
  readonly start: number;
  readonly end: number;
  /** The payload of a length-delimited entry (string, bytes, message, packed list); the value otherwise. */
  readonly valueStart: number;
}

/** Bytes that are not a protobuf message; callers say whose bytes they were. */
export class WireFormatError extends Error {
  override readonly name = 'WireFormatError';
}

function malformed(why: string): WireFormatError {
  return new WireFormatError(`malformed protobuf message: ${why}`);
}

/** A varint at `offset`: its value (exact up to 2^53) and the offset after it. */
function readVarint(bytes: Uint8Array, offset: number): [value: number, next: number] {
  let value = 0;
  let scale = 1;
  for (let i = offset; i < bytes.length && i < offset + 10; i++) {
    const byte = bytes[i] as number;
    value += (byte & 0x7f) * scale;
    if ((byte & 0x80) === 0) return [value, i + 1];
    scale *= 128;
  }
  throw malformed(`truncated varint at byte ${offset}`);
}

/** Every field entry of a message, in wire order; throws on bytes that are not a well-formed message. */
export function wireFields(bytes: Uint8Array): WireField[] {
  const fields: WireField[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const start = offset;
    const [tag, afterTag] = readVarint(bytes, offset);
    const number = Math.floor(tag / 8);
    const wireType = tag % 8;
    if (number < 1) throw malformed(`field number 0 at byte ${start}`);
    let valueStart = afterTag;
    let end: number;
    if (wireType === VARINT) end = readVarint(bytes, afterTag)[1];
    else if (wireType === FIXED64) end = afterTag + 8;
    else if (wireType === FIXED32) end = afterTag + 4;
    else if (wireType === LENGTH_DELIMITED) {
      const [length, afterLength] = readVarint(bytes, afterTag);
      valueStart = afterLength;
      end = afterLength + length;
    } else throw malformed(`unsupported wire type ${wireType} at byte ${start}`);
    if (end > bytes.length) throw malformed(`field ${number} runs past the end of the message`);
    fields.push({ number, wireType, start, end, valueStart });
    offset = end;
  }
  return fields;
}

function encodeVarint(value: number): Buffer {
  const out: number[] = [];
  let rest = value;
  while (rest >= 0x80) {
    out.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  out.push(rest);
  return Buffer.from(out);
}

/** A length-delimited entry (tag, length, payload) for field `number`. */
export function lengthDelimited(number: number, payload: Uint8Array): Buffer {
  return Buffer.concat([encodeVarint(number * 8 + LENGTH_DELIMITED), encodeVarint(payload.length), payload]);
}

const asBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/**
 * The payload of a singular length-delimited field. Several occurrences of a message field merge on the wire,
 * so their payloads are concatenated; for a string the last occurrence wins, as in any protobuf parser.
 */
function payloadOf(bytes: Uint8Array, number: number, merge: boolean): Buffer | undefined {
  const parts: Buffer[] = [];
  for (const f of wireFields(bytes)) {
    if (f.number !== number || f.wireType !== LENGTH_DELIMITED) continue;
    const payload = asBuffer(bytes).subarray(f.valueStart, f.end);
    if (merge) parts.push(payload);
    else parts.splice(0, parts.length, payload);
  }
  if (parts.length === 0) return undefined;
  return parts.length === 1 ? parts[0] : Buffer.concat(parts);
}

/** The string at a path of field numbers (messages, then a string), e.g. `[2, 1]`; undefined when unset. */
export function stringAt(bytes: Uint8Array, path: readonly number[]): string | undefined {
  let message: Uint8Array | undefined = bytes;
  for (const [i, number] of path.entries()) {
    if (message === undefined) return undefined;
    message = payloadOf(message, number, i < path.length - 1);
  }
  return message === undefined ? undefined : asBuffer(message).toString('utf8');
}

/** The message at a path of field numbers (occurrences merged, as a parser would), e.g. `[2, 2]`; undefined when unset. */
export function messageAt(bytes: Uint8Array, path: readonly number[]): Buffer | undefined {
  let message: Buffer | undefined = asBuffer(bytes);
  for (const number of path) {
    if (message === undefined) return undefined;
    message = payloadOf(message, number, true);
  }
  return message;
}

/**
 * The unsigned varint (uint64, uint32, a non-negative int64) at a path of field numbers, exact up to 2^53; the last
 * occurrence wins, as in any protobuf parser; undefined when unset.
 */
export function varintAt(bytes: Uint8Array, path: readonly number[]): number | undefined {
  const number = path[path.length - 1];
  const message = number === undefined ? undefined : messageAt(bytes, path.slice(0, -1));
  if (message === undefined) return undefined;
  let value: number | undefined;
  for (const f of wireFields(message)) if (f.number === number && f.wireType === VARINT) value = readVarint(message, f.valueStart)[0];
  return value;
}

/**
 * The message with the string at `path` set to `value` ("" clears it, as proto3 encodes it). Every other entry
 * keeps its bytes and order; the occurrences of each message on the path become one entry in the first one's place.
 */
export function replaceStringAt(bytes: Uint8Array, path: readonly number[], value: string): Buffer {
  return replaceAt(bytes, path, value === '' ? undefined : Buffer.from(value, 'utf8'));
}

/** The message with the message at `path` set to `payload` (bytes of that message), as `replaceStringAt` does. */
export function replaceMessageAt(bytes: Uint8Array, path: readonly number[], payload: Buffer): Buffer {
  return replaceAt(bytes, path, payload);
}

/** `path`'s last field set to `leaf` (a length-delimited payload), or removed when undefined. */
function replaceAt(bytes: Uint8Array, path: readonly number[], leaf: Buffer | undefined): Buffer {
  const [number, ...rest] = path;
  if (number === undefined) throw new Error('replacing a field needs a non-empty path');
  const source = asBuffer(bytes);
  const kept: Buffer[] = [];
  let insertAt: number | undefined;
  const nested: Buffer[] = [];
  for (const f of wireFields(source)) {
    if (f.number !== number) {
      kept.push(source.subarray(f.start, f.end));
      continue;
    }
    insertAt ??= kept.length;
    if (f.wireType === LENGTH_DELIMITED) nested.push(source.subarray(f.valueStart, f.end));
  }
  let replacement: Buffer | undefined;
  if (rest.length === 0) replacement = leaf === undefined ? undefined : lengthDelimited(number, leaf);
  else if (nested.length > 0 || leaf !== undefined) replacement = lengthDelimited(number, replaceAt(Buffer.concat(nested), rest, leaf));
  if (replacement !== undefined) kept.splice(insertAt ?? kept.length, 0, replacement);
  return Buffer.concat(kept);
}

/** The payloads of the entries of a repeated message field, in order. */
export function itemsOf(bytes: Uint8Array, number: number): Buffer[] {
  const source = asBuffer(bytes);
  return wireFields(source)
    .filter((f) => f.number === number && f.wireType === LENGTH_DELIMITED)
    .map((f) => source.subarray(f.valueStart, f.end));
}

/**
 * The message with the `index`-th entry of the repeated message field `number` rewritten by `rewrite` (from and
 * to its payload); every other entry keeps its bytes and place.
 */
export function replaceItem(bytes: Uint8Array, number: number, index: number, rewrite: (item: Buffer) => Buffer): Buffer {
  const source = asBuffer(bytes);
  let seen = 0;
  return Buffer.concat(
    wireFields(source).map((f) => {
      const entry = source.subarray(f.start, f.end);
      if (f.number !== number || f.wireType !== LENGTH_DELIMITED || seen++ !== index) return entry;
      return lengthDelimited(number, rewrite(source.subarray(f.valueStart, f.end)));
    }),
  );
}
