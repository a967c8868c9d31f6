import { GENESIS_HASH, checkLine, type ChainHead, type LineCheck } from './line-format';
import { readLines, type Line } from './read-lines';
import {
  checkpointMismatch,
  describeBreak,
  missingCheckpoint,
  problem,
  truncatedMessage,
  unkeyed,
  type Intact,
  type Problem,
} from './verify-problems';

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
    problems.push(await describeBreak(files, line, check, last, withKey));
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
      else problems.push(checkpointMismatch(line, check.seq, logged));
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
