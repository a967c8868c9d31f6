import * as fs from 'node:fs';
import { dirname } from 'node:path';
import { errorMessage } from '../errors';
import type { Logger } from '../log';
import { syncDirectory, type AuditIo } from './file-io';
import { formatRecord, type ChainHead } from './line-format';
import { recoverChain } from './recover';

/** What the file holds of the settings; read anew on every step, since a reload may change them. */
export interface LogFileSettings {
  readonly fsync: 'record' | 'interval';
  readonly maxBytes: number;
  readonly keep: number;
  readonly key?: Buffer | undefined;
  /** Told about each rollback of a failed write: whether the file could be cut back to its last record. */
  readonly onRollback?: (rolledBack: boolean) => void;
}

/** The start of the next write: a newline after torn bytes, the marker of a failed write, and the chain after them. */
export interface Lead {
  readonly chunk: Buffer[];
  readonly bytes: number;
  readonly head: ChainHead;
}

/** What the file looked like before a write, so a failed write can be undone. */
interface Mark {
  readonly size: number;
  readonly head: ChainHead;
  readonly needsNewline: boolean;
}

/** A failed write whose bytes could not be cut off: the next record written says where they are. */
interface Unrolled {
  readonly error: string;
  readonly rollbackError: string;
}

const FILE_MODE = 0o640;
const NEWLINE = Buffer.from('\n');

/**
 * The live file of one audit log and where its chain stands, through one open descriptor. A write is all or
 * nothing: one that fails is cut back to the last complete record; if even that fails, the file is read back
 * before the next write and the next record marks the bytes left behind (`writeFailed`), so `audit verify` can
 * tell them from a crash.
 */
export class AuditLogFile {
  private fd = -1;
  private bytes = 0;
  private chainHead: ChainHead;
  private needsNewline: boolean;
  /** The tail is unknown (a write failed and could not be undone, or a rotation failed): read it back first. */
  private needsRecovery = false;
  private unrolled: Unrolled | undefined;
  private marker: Record<string, unknown> | undefined;
  private dirty = false;

  /** Opens (or creates) the file and finds where its chain stands; throws if it cannot be opened. */
  constructor(
    readonly path: string,
    private readonly settings: () => LogFileSettings,
    private readonly io: AuditIo,
    private readonly log: () => Logger,
  ) {
    fs.mkdirSync(dirname(path), { recursive: true, mode: 0o750 });
    const state = this.recover(false);
    this.chainHead = state.head;
    this.needsNewline = state.needsNewline;
  }

  get head(): ChainHead {
    return this.chainHead;
  }

  get size(): number {
    return this.bytes;
  }

  /** Reads the tail back if it is unknown, and gives what the next write starts with. */
  async lead(): Promise<Lead> {
    if (this.needsRecovery) await this.reopen();
    const chunk: Buffer[] = this.needsNewline ? [NEWLINE] : [];
    let bytes = chunk.length;
    let head = this.chainHead;
    if (this.marker !== undefined) {
      const next = formatRecord(head, this.marker, this.settings().key);
      chunk.push(next.line, NEWLINE);
      bytes += next.line.length + 1;
      head = next.head;
    }
    return { chunk, bytes, head };
  }

  /** Writes a chunk ending in `head`'s record (and fsyncs it with fsync: record); undone if that fails. */
  async commit(chunk: readonly Buffer[], bytes: number, head: ChainHead): Promise<void> {
    if (bytes === 0) return;
    const mark: Mark = { size: this.bytes, head: this.chainHead, needsNewline: this.needsNewline };
    try {
      await this.io.write(this.fd, Buffer.concat(chunk, bytes));
      this.dirty = true;
      if (this.settings().fsync === 'record') {
        await this.io.fsync(this.fd);
        this.dirty = false;
      }
    } catch (err) {
      await this.rollBack(mark, err);
      throw err;
    }
    this.bytes += bytes;
    this.needsNewline = false;
    this.chainHead = head;
    this.marker = undefined;
  }

  /** fsyncs what was written since the last fsync (fsync: interval); the error, if any, is the caller's. */
  async sync(): Promise<void> {
    if (!this.dirty || this.fd < 0) return;
    await this.io.fsync(this.fd);
    this.dirty = false;
  }

  get unsynced(): boolean {
    return this.dirty;
  }

  /** `path` → `path.1` → … → `path.<keep>` (the oldest is overwritten), then a fresh `path`. */
  async rotate(): Promise<void> {
    const { keep } = this.settings();
    try {
      await this.io.fsync(this.fd);
      fs.closeSync(this.fd);
      this.fd = -1;
      for (let i = keep - 1; i >= 1; i--) {
        try {
          await fs.promises.rename(`${this.path}.${i}`, `${this.path}.${i + 1}`);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
      }
      await fs.promises.rename(this.path, `${this.path}.1`);
      this.fd = fs.openSync(this.path, 'a', FILE_MODE);
    } catch (err) {
      // Which file is live now is not known for sure: find out before the next write.
      this.needsRecovery = true;
      throw err;
    }
    this.bytes = 0;
    this.dirty = false;
    syncDirectory(dirname(this.path));
  }

  async close(): Promise<void> {
    if (this.fd < 0) return;
    try {
      await this.sync();
    } finally {
      fs.closeSync(this.fd);
      this.fd = -1;
    }
  }

  /** Cuts off what a failed write left; if that fails too, the tail is read back before the next write. */
  private async rollBack(mark: Mark, cause: unknown): Promise<void> {
    try {
      await this.io.truncate(this.fd, mark.size);
      this.settings().onRollback?.(true);
    } catch (err) {
      this.settings().onRollback?.(false);
      this.needsRecovery = true;
      this.unrolled = { error: errorMessage(cause), rollbackError: errorMessage(err) };
      this.log().error('audit log: a failed write could not be rolled back; the next record will mark its bytes', {
        file: this.path,
        offset: mark.size,
        error: errorMessage(cause),
        rollbackError: errorMessage(err),
      });
    }
  }

  /** Reads the tail back; bytes a failed write left after the last record are cut off now, or else marked. */
  private async reopen(): Promise<void> {
    if (this.fd >= 0) {
      try {
        fs.closeSync(this.fd);
      } catch {
        // Already unusable; the new descriptor is what matters.
      }
      this.fd = -1;
    }
    const unrolled = this.unrolled;
    this.unrolled = undefined;
    const state = this.recover(unrolled !== undefined);
    this.chainHead = state.head;
    this.needsNewline = state.needsNewline;
    this.needsRecovery = false;
    const garbage = state.trailingGarbage;
    if (garbage === undefined || unrolled === undefined) return;
    try {
      await this.io.truncate(this.fd, garbage.offset);
      this.bytes = garbage.offset;
      this.needsNewline = false;
      this.settings().onRollback?.(true);
    } catch (err) {
      this.marker = {
        time: new Date().toISOString(),
        writeFailed: { offset: garbage.offset, bytes: garbage.bytes, error: unrolled.error, rollbackError: errorMessage(err) },
      };
    }
  }

  /** `ours`: the torn bytes are known to be a failed write of this process (already logged), not a crash. */
  private recover(ours: boolean): ReturnType<typeof recoverChain> {
    const state = recoverChain(this.path, this.settings().keep);
    this.fd = fs.openSync(this.path, 'a', FILE_MODE);
    this.bytes = state.size;
    if (state.trailingGarbage && !ours) {
      this.log().warn('audit log ends with an incomplete record (interrupted write); the chain continues on a new line', {
        file: state.trailingGarbage.file,
        offset: state.trailingGarbage.offset,
        bytes: state.trailingGarbage.bytes,
        seq: state.head.seq,
      });
    }
    return state;
  }
}
