/**
 * The problems a check of the audit log reports, each with where it is and what kind of change explains it;
 * the first break is explained by looking elsewhere in the files (a record moved, copied or removed).
 */
import { checkLine, type LineCheck } from './line-format';
import { readLines, type Line } from './read-lines';

export type ProblemKind =
  | 'edited'
  | 'removed'
  | 'inserted'
  | 'reordered'
  | 'broken-link'
  | 'truncated'
  | 'malformed'
  /** With a key: a record without an HMAC after records with one, or no HMAC at all. */
  | 'unkeyed'
  /** A chain head the proxy logged that the files no longer hold. */
  | 'checkpoint';

export interface Problem {
  readonly kind: ProblemKind;
  readonly file: string;
  /** 1-based line number in `file`. */
  readonly line: number;
  /** Byte offset of the line's first byte in `file`. */
  readonly offset: number;
  /** The record's seq, when it can be read. */
  readonly seq: number | undefined;
  readonly message: string;
}

/** The last record that held, as the chain goes on from it. */
export interface Intact {
  readonly seq: number;
  readonly lineHash: string;
  readonly at: Line;
}

const where = (l: Pick<Line, 'file' | 'line'>): string => `${l.file}:${l.line}`;
const range = (from: number, to: number): string => (from === to ? `seq ${from}` : `seq ${from}..${to}`);

export function unkeyed(line: Line, seq: number | undefined, what: string): Problem {
  return problem('unkeyed', line, seq, `${where(line)}: ${seq === undefined ? '' : `record seq ${seq}: `}${what}`);
}

export function missingCheckpoint(
  files: readonly string[],
  seq: number,
  hash: string,
  first: number | undefined,
  last: Intact | undefined,
): Problem {
  const at = last?.at ?? { file: files[0] ?? '', line: 0, offset: 0 };
  const why =
    last === undefined || seq > last.seq
      ? `beyond the last record${last === undefined ? '' : ` (seq ${last.seq})`}: records were removed from the end`
      : first !== undefined && seq < first
        ? `before the first record given (seq ${first}): give the older files too`
        : 'not found where the chain stopped being checked';
  return {
    kind: 'checkpoint',
    file: at.file,
    line: at.line,
    offset: at.offset,
    seq,
    message: `the chain head seq ${seq} (hash ${hash}) the proxy logged is ${why}`,
  };
}

export function checkpointMismatch(line: Line, seq: number, logged: string): Problem {
  return problem(
    'checkpoint',
    line,
    seq,
    `${where(line)}: record seq ${seq} is not the one the proxy logged (hash ${logged}): the chain was rewritten up to here`,
  );
}

export function problem(kind: ProblemKind, line: Line, seq: number | undefined, message: string): Problem {
  return { kind, file: line.file, line: line.line, offset: line.offset, seq, message };
}

export function truncatedMessage(line: Line, seq: number | undefined): string {
  const what = seq === undefined ? 'an incomplete record' : `an incomplete record (seq ${seq})`;
  const end = line.terminated ? '' : ' at the end of the file';
  return (
    `${where(line)}: ${what} of ${line.bytes.length} bytes at byte offset ${line.offset}${end}: a write was cut off ` +
    '(crash or kill); that record is lost, and the chain resumes from the record before it'
  );
}

/** Names the kind of tampering that explains the first break, looking elsewhere in the files if needed. */
export async function describeBreak(
  files: readonly string[],
  line: Line,
  check: LineCheck,
  last: Intact | undefined,
  withKey: boolean,
): Promise<Problem> {
  const at = where(line);
  if (check.kind === 'hash-mismatch') {
    const seq = check.seq === undefined ? 'a record' : `record seq ${check.seq}`;
    const what =
      check.keyed && withKey
        ? 'its HMAC does not match its content (edited, or written with another key)'
        : 'its hash does not match its content';
    return problem('edited', line, check.seq, `${at}: ${seq} was edited: ${what} (byte offset ${line.offset})`);
  }
  if (check.kind !== 'record') {
    return problem(
      'malformed',
      line,
      check.seq,
      `${at}: not an audit record (byte offset ${line.offset}): a line was inserted or overwritten`,
    );
  }
  const { seq } = check;
  if (!last) {
    return problem('broken-link', line, seq, `${at}: record seq 1 starts the chain but its prev is not the genesis value (64 zeros)`);
  }
  const before = `${where(last.at)} (seq ${last.seq})`;
  if (seq === last.seq + 1) {
    return problem(
      'broken-link',
      line,
      seq,
      `${at}: record seq ${seq} does not link to the record before it, ${before}: that record was edited and re-hashed, or replaced`,
    );
  }
  if (seq > last.seq + 1) {
    const missing = await find(files, (l, c) => l.index > line.index && c.seq > last.seq && c.seq < seq);
    if (missing) {
      return problem(
        'reordered',
        line,
        seq,
        `${at}: record seq ${seq} is out of order: seq ${missing.seq} comes after it, at ${where(missing.line)} (records were moved)`,
      );
    }
    return problem(
      'removed',
      line,
      seq,
      `${at}: ${range(last.seq + 1, seq - 1)} missing between ${before} and ${at} (seq ${seq}): records were removed`,
    );
  }
  const earlier = await find(files, (l, c) => l.index < line.index && c.seq === seq);
  if (earlier?.line.bytes.equals(line.bytes)) {
    return problem(
      'inserted',
      line,
      seq,
      `${at}: record seq ${seq} is an exact copy of the record at ${where(earlier.line)}: a record was inserted`,
    );
  }
  if (earlier) {
    // Two records claiming the same place: the genuine one is the one the chain goes on from.
    const next = await find(files, (l) => l.index > line.index);
    const forged = earlier.check.prev === check.prev && next?.check.prev === check.lineHash ? earlier.line : line;
    const other = forged === line ? earlier.line : line;
    return problem(
      'inserted',
      forged,
      seq,
      `${where(forged)}: record seq ${seq} was inserted (byte offset ${forged.offset}): the chain goes on from the other record with that seq, at ${where(other)}`,
    );
  }
  return problem(
    'reordered',
    line,
    seq,
    `${at}: record seq ${seq} comes after ${before}: out of order (records moved, or files not given oldest first)`,
  );
}

type RecordCheck = Extract<LineCheck, { kind: 'record' }>;

/** The first intact record matching `test` (rereads the files: only ever done at the problem). */
async function find(
  files: readonly string[],
  test: (line: Line, check: RecordCheck) => boolean,
): Promise<{ line: Line; seq: number; check: RecordCheck } | undefined> {
  for await (const line of readLines(files)) {
    const check = checkLine(line.bytes);
    if (check.kind === 'record' && test(line, check)) return { line, seq: check.seq, check };
  }
  return undefined;
}
