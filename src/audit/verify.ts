import { open } from 'node:fs/promises';
import { GENESIS_HASH, checkLine, type LineCheck } from './line-format';

export type ProblemKind = 'edited' | 'removed' | 'inserted' | 'reordered' | 'broken-link' | 'truncated' | 'malformed';

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

export interface VerifyResult {
  readonly ok: boolean;
  readonly files: readonly string[];
  /** Intact records checked (up to the first problem that stopped the check). */
  readonly records: number;
  readonly firstSeq: number | undefined;
  readonly lastSeq: number | undefined;
  /** sha256 of the last intact record's line: the `prev` the next record must carry. Keep it elsewhere to
   * detect a later rewrite of the whole tail. */
  readonly lastHash: string | undefined;
  /**
   * Interrupted writes found on the way (checking goes on past those: the writer resumes the chain after
   * them), then at most one other problem, where checking stopped.
   */
  readonly problems: readonly Problem[];
}

interface Line {
  readonly index: number;
  readonly file: string;
  readonly line: number;
  readonly offset: number;
  readonly bytes: Buffer;
  /** False for a last line without `\n`. */
  readonly terminated: boolean;
}

const CHUNK = 1024 * 1024;

/** The lines of the files in order, with their positions; never holds more than a chunk and one line. */
async function* readLines(files: readonly string[]): AsyncGenerator<Line> {
  let index = 0;
  for (const file of files) {
    const handle = await open(file, 'r');
    try {
      const buf = Buffer.alloc(CHUNK);
      let carry = Buffer.alloc(0);
      let carryOffset = 0;
      let position = 0;
      let line = 0;
      for (;;) {
        const { bytesRead } = await handle.read(buf, 0, CHUNK, position);
        if (bytesRead === 0) break;
        position += bytesRead;
        const data = Buffer.concat([carry, buf.subarray(0, bytesRead)]);
        let start = 0;
        for (let nl = data.indexOf(0x0a); nl !== -1; nl = data.indexOf(0x0a, start)) {
          yield { index: index++, file, line: ++line, offset: carryOffset + start, bytes: data.subarray(start, nl), terminated: true };
          start = nl + 1;
        }
        carryOffset += start;
        carry = data.subarray(start);
      }
      if (carry.length > 0) yield { index: index++, file, line: ++line, offset: carryOffset, bytes: carry, terminated: false };
    } finally {
      await handle.close();
    }
  }
}

interface Intact {
  readonly seq: number;
  readonly lineHash: string;
  readonly at: Line;
}

const where = (l: Pick<Line, 'file' | 'line'>): string => `${l.file}:${l.line}`;
const range = (from: number, to: number): string => (from === to ? `seq ${from}` : `seq ${from}..${to}`);

/**
 * Checks that the files (oldest first) hold one unbroken hash chain, and explains the first place where it
 * is not: which record, where, and what kind of change explains it.
 */
export async function verifyAuditFiles(files: readonly string[]): Promise<VerifyResult> {
  const problems: Problem[] = [];
  let records = 0;
  let first: number | undefined;
  let last: Intact | undefined;
  const stop = async (line: Line, check: LineCheck): Promise<Problem> => describe(files, line, check, last);
  for await (const line of readLines(files)) {
    const check = checkLine(line.bytes);
    if (check.kind === 'truncated') {
      problems.push(problem('truncated', line, check.seq, truncatedMessage(line, check.seq)));
      continue;
    }
    if (check.kind !== 'record') {
      problems.push(await stop(line, check));
      break;
    }
    const expected = last ? last.seq + 1 : check.seq;
    const expectedPrev = last ? last.lineHash : check.seq === 1 ? GENESIS_HASH : check.prev;
    if (check.seq !== expected || check.prev !== expectedPrev) {
      problems.push(await stop(line, check));
      break;
    }
    first ??= check.seq;
    last = { seq: check.seq, lineHash: check.lineHash, at: line };
    records += 1;
  }
  return { ok: problems.length === 0, files, records, firstSeq: first, lastSeq: last?.seq, lastHash: last?.lineHash, problems };
}

function problem(kind: ProblemKind, line: Line, seq: number | undefined, message: string): Problem {
  return { kind, file: line.file, line: line.line, offset: line.offset, seq, message };
}

function truncatedMessage(line: Line, seq: number | undefined): string {
  const what = seq === undefined ? 'an incomplete record' : `an incomplete record (seq ${seq})`;
  const end = line.terminated ? '' : ' at the end of the file';
  return (
    `${where(line)}: ${what} of ${line.bytes.length} bytes at byte offset ${line.offset}${end}: a write was cut off ` +
    '(crash or kill); that record is lost, and the chain resumes from the record before it'
  );
}

/** Names the kind of tampering that explains the first break, looking elsewhere in the files if needed. */
async function describe(files: readonly string[], line: Line, check: LineCheck, last: Intact | undefined): Promise<Problem> {
  const at = where(line);
  if (check.kind === 'hash-mismatch') {
    const seq = check.seq === undefined ? 'a record' : `record seq ${check.seq}`;
    return problem('edited', line, check.seq, `${at}: ${seq} was edited: its hash does not match its content (byte offset ${line.offset})`);
  }
  if (check.kind !== 'record') {
    return problem('malformed', line, check.seq, `${at}: not an audit record (byte offset ${line.offset}): a line was inserted or overwritten`);
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
    return problem('inserted', line, seq, `${at}: record seq ${seq} is an exact copy of the record at ${where(earlier.line)}: a record was inserted`);
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
