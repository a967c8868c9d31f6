import { createHash } from 'node:crypto';

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
 */
export const GENESIS_HASH = '0'.repeat(64);

const SUFFIX_HEAD = Buffer.from(',"hash":"');
const SUFFIX_TAIL = Buffer.from('"}');
/** `,"hash":"` + 64 hex digits + `"}`. */
const SUFFIX_LENGTH = SUFFIX_HEAD.length + 64 + SUFFIX_TAIL.length;
const HEX64 = /^[0-9a-f]{64}$/;
const RECORD_START = Buffer.from('{"seq":');

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export interface ChainHead {
  /** seq of the last record written; 0 before the first. */
  readonly seq: number;
  /** sha256 of the last record's line; GENESIS_HASH before the first. */
  readonly lineHash: string;
}

export const GENESIS: ChainHead = Object.freeze({ seq: 0, lineHash: GENESIS_HASH });

/** The next record's line (without `\n`) and the chain head after it. */
export function formatRecord(head: ChainHead, fields: Readonly<Record<string, unknown>>): { line: Buffer; head: ChainHead } {
  const seq = head.seq + 1;
  const record: Record<string, unknown> = { seq, prev: head.lineHash };
  // The chain fields belong to the writer alone.
  for (const [key, value] of Object.entries(fields)) if (key !== 'seq' && key !== 'prev' && key !== 'hash') record[key] = value;
  const unhashed = JSON.stringify(record);
  const hash = sha256Hex(unhashed);
  const line = Buffer.from(`${unhashed.slice(0, -1)},"hash":"${hash}"}`);
  return { line, head: { seq, lineHash: sha256Hex(line) } };
}

export type LineCheck =
  /** A complete record whose hash matches its content. */
  | { readonly kind: 'record'; readonly seq: number; readonly prev: string; readonly lineHash: string }
  /** Starts like a record but has no hash suffix: an interrupted write. */
  | { readonly kind: 'truncated'; readonly seq: number | undefined }
  /** Has the hash suffix but the hash does not match the bytes before it. */
  | { readonly kind: 'hash-mismatch'; readonly seq: number | undefined }
  /** Not a record at all (or a record with a valid hash but no usable seq/prev). */
  | { readonly kind: 'malformed'; readonly seq: number | undefined };

/** Classifies one line (its bytes without the `\n`). */
export function checkLine(line: Buffer): LineCheck {
  const seq = leadingSeq(line);
  if (!hasHashSuffix(line)) {
    const looksLikeRecord = line.length > 0 && RECORD_START.subarray(0, line.length).equals(line.subarray(0, RECORD_START.length));
    return { kind: looksLikeRecord ? 'truncated' : 'malformed', seq };
  }
  const cut = line.length - SUFFIX_LENGTH;
  const claimed = line.toString('latin1', cut + SUFFIX_HEAD.length, cut + SUFFIX_HEAD.length + 64);
  const unhashed = Buffer.concat([line.subarray(0, cut), Buffer.from('}')]);
  if (sha256Hex(unhashed) !== claimed) return { kind: 'hash-mismatch', seq };
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
  return { kind: 'record', seq: s, prev, lineHash: sha256Hex(line) };
}

function hasHashSuffix(line: Buffer): boolean {
  if (line.length <= SUFFIX_LENGTH) return false;
  const cut = line.length - SUFFIX_LENGTH;
  if (!line.subarray(cut, cut + SUFFIX_HEAD.length).equals(SUFFIX_HEAD)) return false;
  if (!line.subarray(line.length - SUFFIX_TAIL.length).equals(SUFFIX_TAIL)) return false;
  return HEX64.test(line.toString('latin1', cut + SUFFIX_HEAD.length, cut + SUFFIX_HEAD.length + 64));
}

/** The `seq` a (possibly partial) line starts with, for reporting. */
function leadingSeq(line: Buffer): number | undefined {
  const match = /^\{"seq":(\d{1,15})[,}]/.exec(line.toString('latin1', 0, Math.min(line.length, 32)));
  return match?.[1] === undefined ? undefined : Number(match[1]);
}
