import { createHash, createHmac } from 'node:crypto';

/**
 * The exact byte format of an audit line, shared by the writer and the verifier.
 *
 *   line      = unhashed without its final `}` + `,"hash":"<hex>"}`   (then `\n` in the file)
 *   unhashed  = JSON.stringify({ seq, prev, ...fields })
 *   hash      = sha256(unhashed)                 (UTF-8 bytes, lowercase hex)
 *   prev      = sha256(previous record's line)   (its exact bytes without the `\n`; 64 zeros for the first)
 *
 * So a verifier needs no JSON canonicalisation: cut the fixed-length hash suffix off the bytes, put the `}`
 * back, hash. `seq` and `prev` lead every record so a partial line still shows where it belonged.
 *
 * A keyed chain writes `,"hmac":"<hex>"}` instead, hmac = HMAC-SHA256(key, unhashed): the same length and the
 * same links, but a record can only be made (or remade) with the key.
 */
export const GENESIS_HASH = '0'.repeat(64);

const SUFFIX_HEAD = Buffer.from(',"hash":"');
const KEYED_SUFFIX_HEAD = Buffer.from(',"hmac":"');
const SUFFIX_TAIL = Buffer.from('"}');
/** `,"hash":"` + 64 hex digits + `"}`. */
const SUFFIX_LENGTH = SUFFIX_HEAD.length + 64 + SUFFIX_TAIL.length;
const HEX64 = /^[0-9a-f]{64}$/;
const RECORD_START = Buffer.from('{"seq":');

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

function hmacHex(key: Buffer, data: Buffer | string): string {
  return createHmac('sha256', key).update(data).digest('hex');
}

export interface ChainHead {
  /** seq of the last record written; 0 before the first. */
  readonly seq: number;
  /** sha256 of the last record's line; GENESIS_HASH before the first. */
  readonly lineHash: string;
}

export const GENESIS: ChainHead = Object.freeze({ seq: 0, lineHash: GENESIS_HASH });

const CHAIN_FIELDS = new Set(['seq', 'prev', 'hash', 'hmac']);

/** The next record's line (without `\n`) and the chain head after it; with `key`, an HMAC instead of a hash. */
export function formatRecord(head: ChainHead, fields: Readonly<Record<string, unknown>>, key?: Buffer): { line: Buffer; head: ChainHead } {
  const seq = head.seq + 1;
  const record: Record<string, unknown> = { seq, prev: head.lineHash };
  // The chain fields belong to the writer alone.
  for (const [name, value] of Object.entries(fields)) if (!CHAIN_FIELDS.has(name)) record[name] = value;
  const unhashed = JSON.stringify(record);
  const line = Buffer.from(
    key === undefined
      ? `${unhashed.slice(0, -1)},"hash":"${sha256Hex(unhashed)}"}`
      : `${unhashed.slice(0, -1)},"hmac":"${hmacHex(key, unhashed)}"}`,
  );
  return { line, head: { seq, lineHash: sha256Hex(line) } };
}

/** Where a write that failed and could not be rolled back left its bytes; the record after them says so. */
export interface FailedWrite {
  readonly offset: number;
  readonly bytes: number;
}

export type LineCheck =
  /**
   * A complete record whose hash matches its content. `keyed`: it carries an HMAC, checked only when a key was
   * given (`macChecked`). `failedWrite`: it marks the bytes of a failed write just before it.
   */
  | {
      readonly kind: 'record';
      readonly seq: number;
      readonly prev: string;
      readonly lineHash: string;
      readonly keyed: boolean;
      readonly macChecked: boolean;
      readonly failedWrite?: FailedWrite;
    }
  /** Starts like a record but has no hash suffix: an interrupted write. */
  | { readonly kind: 'truncated'; readonly seq: number | undefined }
  /** Has the hash suffix but the hash (or HMAC: `keyed`) does not match the bytes before it. */
  | { readonly kind: 'hash-mismatch'; readonly seq: number | undefined; readonly keyed: boolean }
  /** Not a record at all (or a record with a valid hash but no usable seq/prev). */
  | { readonly kind: 'malformed'; readonly seq: number | undefined };

/**
 * Classifies one line (its bytes without the `\n`). Without keys an HMAC cannot be checked, only the record's
 * shape; with them, an HMAC that matches none of them reads as `hash-mismatch`.
 */
export function checkLine(line: Buffer, keys: readonly Buffer[] = []): LineCheck {
  const seq = leadingSeq(line);
  const suffix = hashSuffix(line);
  if (suffix === undefined) {
    const looksLikeRecord = line.length > 0 && RECORD_START.subarray(0, line.length).equals(line.subarray(0, RECORD_START.length));
    return { kind: looksLikeRecord ? 'truncated' : 'malformed', seq };
  }
  const cut = line.length - SUFFIX_LENGTH;
  const claimed = line.toString('latin1', cut + SUFFIX_HEAD.length, cut + SUFFIX_HEAD.length + 64);
  const unhashed = Buffer.concat([line.subarray(0, cut), Buffer.from('}')]);
  const keyed = suffix === 'hmac';
  if (!keyed && sha256Hex(unhashed) !== claimed) return { kind: 'hash-mismatch', seq, keyed };
  if (keyed && keys.length > 0 && !keys.some((key) => hmacHex(key, unhashed) === claimed)) return { kind: 'hash-mismatch', seq, keyed };
  let parsed: unknown;
  try {
    parsed = JSON.parse(line.toString('utf8'));
  } catch {
    return { kind: 'malformed', seq };
  }
  if (typeof parsed !== 'object' || parsed === null) return { kind: 'malformed', seq };
  const record = parsed as Record<string, unknown>;
  const { seq: s, prev } = record;
  if (typeof s !== 'number' || !Number.isSafeInteger(s) || s < 1 || typeof prev !== 'string' || !HEX64.test(prev)) {
    return { kind: 'malformed', seq };
  }
  const failedWrite = failedWriteOf(record.writeFailed);
  return {
    kind: 'record',
    seq: s,
    prev,
    lineHash: sha256Hex(line),
    keyed,
    macChecked: keyed && keys.length > 0,
    ...(failedWrite ? { failedWrite } : {}),
  };
}

function failedWriteOf(value: unknown): FailedWrite | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { offset, bytes } = value as Record<string, unknown>;
  return Number.isSafeInteger(offset) && Number.isSafeInteger(bytes) ? { offset: offset as number, bytes: bytes as number } : undefined;
}

function hashSuffix(line: Buffer): 'hash' | 'hmac' | undefined {
  if (line.length <= SUFFIX_LENGTH) return undefined;
  const cut = line.length - SUFFIX_LENGTH;
  const head = line.subarray(cut, cut + SUFFIX_HEAD.length);
  const kind = head.equals(SUFFIX_HEAD) ? 'hash' : head.equals(KEYED_SUFFIX_HEAD) ? 'hmac' : undefined;
  if (kind === undefined || !line.subarray(line.length - SUFFIX_TAIL.length).equals(SUFFIX_TAIL)) return undefined;
  return HEX64.test(line.toString('latin1', cut + SUFFIX_HEAD.length, cut + SUFFIX_HEAD.length + 64)) ? kind : undefined;
}

/** The `seq` a (possibly partial) line starts with, for reporting. */
function leadingSeq(line: Buffer): number | undefined {
  const match = /^\{"seq":(\d{1,15})[,}]/.exec(line.toString('latin1', 0, Math.min(line.length, 32)));
  return match?.[1] === undefined ? undefined : Number(match[1]);
}
