import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { GENESIS, checkLine, type ChainHead } from './line-format';

/** Where the chain stands on disk when a writer (re)opens a log. */
export interface RecoveredState {
  readonly head: ChainHead;
  /** File the head record was found in (the live file or a rotated one); undefined for a new chain. */
  readonly foundIn: string | undefined;
  /** Size of the live file. */
  readonly size: number;
  /** The live file is non-empty and its last byte is not `\n` (an interrupted write): start on a new line. */
  readonly needsNewline: boolean;
  /** Bytes after the head record in the live file that are not records (a torn write), if any. */
  readonly trailingGarbage: { readonly file: string; readonly offset: number; readonly bytes: number } | undefined;
}

const FIRST_WINDOW = 64 * 1024;

interface TailRecord {
  readonly head: ChainHead;
  /** Byte offset just past the record's line (its `\n`, if present, not included). */
  readonly end: number;
}

/**
 * Finds the chain head: the last intact record of the live file, else of the newest rotated file that has
 * one. Reads only the tail, growing the window until a record turns up, so a 100 MiB log opens quickly.
 */
export function recoverChain(path: string, maxRotated: number): RecoveredState {
  const live = inspect(path);
  let head: ChainHead = GENESIS;
  let foundIn: string | undefined;
  let trailingGarbage: RecoveredState['trailingGarbage'];
  if (live.last) {
    head = live.last.head;
    foundIn = path;
    if (live.last.end < live.size && !onlyNewline(path, live.last.end, live.size)) {
      trailingGarbage = { file: path, offset: live.last.end + 1, bytes: live.size - live.last.end - 1 };
    }
  } else {
    if (live.size > 0) trailingGarbage = { file: path, offset: 0, bytes: live.size };
    for (let i = 1; i <= maxRotated; i++) {
      const rotated = inspect(`${path}.${i}`);
      if (!rotated.exists) break;
      if (rotated.last) {
        head = rotated.last.head;
        foundIn = `${path}.${i}`;
        break;
      }
    }
  }
  return { head, foundIn, size: live.size, needsNewline: live.size > 0 && !live.endsWithNewline, trailingGarbage };
}

interface Inspection {
  readonly exists: boolean;
  readonly size: number;
  readonly endsWithNewline: boolean;
  readonly last: TailRecord | undefined;
}

function inspect(file: string): Inspection {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { exists: false, size: 0, endsWithNewline: true, last: undefined };
    throw err;
  }
  try {
    const size = fstatSync(fd).size;
    if (size === 0) return { exists: true, size, endsWithNewline: true, last: undefined };
    const lastByte = readAt(fd, size - 1, 1);
    return { exists: true, size, endsWithNewline: lastByte[0] === 0x0a, last: lastRecord(fd, size) };
  } finally {
    closeSync(fd);
  }
}

function lastRecord(fd: number, size: number): TailRecord | undefined {
  for (let window = FIRST_WINDOW; ; window *= 4) {
    const start = Math.max(0, size - window);
    const buf = readAt(fd, start, size - start);
    // Line ends, scanning backwards; the piece before the first `\n` of a partial window is skipped.
    let end = buf.length;
    if (end > 0 && buf[end - 1] === 0x0a) end -= 1;
    for (;;) {
      // (lastIndexOf with a negative offset would count from the end, hence the guard.)
      const nl = end > 0 ? buf.lastIndexOf(0x0a, end - 1) : -1;
      if (nl === -1 && start > 0) break;
      const line = buf.subarray(nl + 1, end);
      if (line.length > 0) {
        const check = checkLine(line);
        if (check.kind === 'record') return { head: { seq: check.seq, lineHash: check.lineHash }, end: start + end };
      }
      if (nl === -1) break;
      end = nl;
    }
    if (start === 0) return undefined;
  }
}

function onlyNewline(file: string, from: number, size: number): boolean {
  if (size - from !== 1) return false;
  const fd = openSync(file, 'r');
  try {
    return readAt(fd, from, 1)[0] === 0x0a;
  } finally {
    closeSync(fd);
  }
}

function readAt(fd: number, position: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done === length ? buf : buf.subarray(0, done);
}
