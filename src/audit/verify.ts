import { GENESIS_HASH, checkLine, type ChainHead, type LineCheck } from './line-format';
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
  /** Records carrying an HMAC; `macChecked` when a key was given and every one of them matched it. */
  readonly keyed: number;
  readonly macChecked: boolean;
  /**
   * Bytes a failed write left (a full disk, say) that the writer could not cut off and marked in the record
   * after them: no record is missing there, so these are not problems.
   */
  readonly failedWrites: readonly FailedWriteNote[];
  /** Chain heads given to check (from the proxy's log) that the files hold exactly. */
  readonly checkpoints: number;
  /**
   * Interrupted writes found on the way (checking goes on past those: the writer resumes the chain after
   * them), unmatched checkpoints, then at most one other problem, where checking stopped.
   */
  readonly problems: readonly Problem[];
}

export interface FailedWriteNote {
  readonly file: string;
  readonly line: number;
  readonly offset: number;
  readonly bytes: number;
  /** The seq of the record that marks them. */
  readonly markedBy: number;
}

export interface VerifyOptions {
  /**
   * The keys of a keyed chain (more than one across a key change): every record from the first keyed one on must
   * carry an HMAC that one of them matches.
   */
  readonly keys?: readonly Buffer[];
  /** Chain heads the proxy logged (`auditChainHead`): the record of each seq must have that line hash. */
  readonly checkpoints?: readonly ChainHead[];
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
export async function verifyAuditFiles(files: readonly string[], options: VerifyOptions = {}): Promise<VerifyResult> {
  const keys = options.keys ?? [];
  const withKey = keys.length > 0;
  const problems: Problem[] = [];
  const failedWrites: FailedWriteNote[] = [];
  const checkpoints = new Map((options.checkpoints ?? []).map((c) => [c.seq, c.lineHash]));
  let matched = 0;
  let records = 0;
  let keyed = 0;
  let first: number | undefined;
  let last: Intact | undefined;
  /** Torn lines not yet explained: by a marker in the record after them, or else as interrupted writes. */
  let torn: { line: Line; seq: number | undefined }[] = [];
  const settleTorn = (marker: Extract<LineCheck, { kind: 'record' }> | undefined, at: Line | undefined): void => {
    const fw = marker?.failedWrite;
    const covered = (l: Line): boolean =>
      fw !== undefined && l.file === at?.file && l.offset >= fw.offset && l.offset + l.bytes.length <= fw.offset + fw.bytes;
    if (marker !== undefined && torn.length > 0 && torn.every((t) => covered(t.line))) {
      for (const t of torn)
        failedWrites.push({
          file: t.line.file,
          line: t.line.line,
          offset: t.line.offset,
          bytes: t.line.bytes.length,
          markedBy: marker.seq,
        });
    } else {
      for (const t of torn) problems.push(problem('truncated', t.line, t.seq, truncatedMessage(t.line, t.seq)));
    }
    torn = [];
  };
  const stop = async (line: Line, check: LineCheck): Promise<void> => {
    settleTorn(undefined, undefined);
    problems.push(await describe(files, line, check, last, withKey));
  };
  for await (const line of readLines(files)) {
    const check = checkLine(line.bytes, keys);
    if (check.kind === 'truncated') {
      torn.push({ line, seq: check.seq });
      continue;
    }
    if (check.kind !== 'record') {
      await stop(line, check);
      break;
    }
    const expected = last ? last.seq + 1 : check.seq;
    const expectedPrev = last ? last.lineHash : check.seq === 1 ? GENESIS_HASH : check.prev;
    if (check.seq !== expected || check.prev !== expectedPrev) {
      await stop(line, check);
      break;
    }
    settleTorn(check, line);
    if (withKey && !check.keyed && keyed > 0) {
      problems.push(
        unkeyed(
          line,
          check.seq,
          `a plain hash where the ${keyed} records before it carry an HMAC: written without the key (a rewritten tail?)`,
        ),
      );
      break;
    }
    const logged = checkpoints.get(check.seq);
    if (logged !== undefined) {
      checkpoints.delete(check.seq);
      if (logged === check.lineHash) matched += 1;
      else
        problems.push(
          problem(
            'checkpoint',
            line,
            check.seq,
            `${where(line)}: record seq ${check.seq} is not the one the proxy logged (hash ${logged}): the chain was rewritten up to here`,
          ),
        );
    }
    if (check.keyed) keyed += 1;
    first ??= check.seq;
    last = { seq: check.seq, lineHash: check.lineHash, at: line };
    records += 1;
  }
  settleTorn(undefined, undefined);
  if (withKey && records > 0 && keyed === 0 && last !== undefined) {
    problems.push(unkeyed(last.at, undefined, 'no record carries an HMAC: this log was not written with the key'));
  }
  for (const [seq, hash] of checkpoints) problems.push(missingCheckpoint(files, seq, hash, first, last));
  return {
    ok: problems.length === 0,
    files,
    records,
    firstSeq: first,
    lastSeq: last?.seq,
    lastHash: last?.lineHash,
    keyed,
    macChecked: withKey && keyed > 0,
    failedWrites,
    checkpoints: matched,
    problems,
  };
}

function unkeyed(line: Line, seq: number | undefined, what: string): Problem {
  return problem('unkeyed', line, seq, `${where(line)}: ${seq === undefined ? '' : `record seq ${seq}: `}${what}`);
}

function missingCheckpoint(
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
async function describe(
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
