import * as fs from 'node:fs';
import { dirname } from 'node:path';
import { errorMessage } from '../errors';
import { RareLog, silentLogger, type Logger } from '../log';
import { nodeIo, syncDirectory, type AuditIo } from './file-io';
import { formatRecord, type ChainHead } from './line-format';
import { recoverChain } from './recover';

export { nodeIo, type AuditIo } from './file-io';

export interface AuditWriterSettings {
  /** `record`: a record is on disk (fsync'd) before append() resolves; `interval`: fsync every fsyncIntervalMs. */
  readonly fsync: 'record' | 'interval';
  readonly fsyncIntervalMs: number;
  /** Records accepted but not yet written (including those being written). */
  readonly queueSize: number;
  /** When queueSize records are pending: wait for room, or drop the record. */
  readonly whenFull: 'block' | 'drop';
  readonly maxBytes: number;
  /** Rotated files kept: `path.1` (newest) … `path.<keep>`. */
  readonly keep: number;
  readonly log?: Logger;
  /** Told about each failed write, fsync or rotation. */
  readonly onError?: (err: unknown) => void;
}

export interface AuditWriterOptions extends AuditWriterSettings {
  readonly path: string;
  readonly io?: Partial<AuditIo>;
}

export type AppendResult = 'written' | 'dropped';

interface Pending {
  readonly fields: Readonly<Record<string, unknown>>;
  readonly resolve: (result: AppendResult) => void;
  readonly reject: (err: unknown) => void;
}

const FILE_MODE = 0o640;
const NEWLINE = Buffer.from('\n');
/** Records per write(): large enough to amortise fsync under load, small enough to bound one write. */
const MAX_BATCH = 256;

/**
 * The single writer of one audit log: records go out in the order append() was called, each chained to the
 * one before, through one open file descriptor; the file rotates by size and the chain carries on.
 */
export class AuditWriter {
  private settings: AuditWriterSettings;
  private readonly io: AuditIo;
  private fd = -1;
  private size = 0;
  private chainHead: ChainHead;
  private needsNewline: boolean;
  private needsRecovery = false;
  private dirty = false;
  private syncDue = false;
  private readonly queue: Pending[] = [];
  /** Appends waiting for room (whenFull: block), admitted in arrival order. */
  private readonly waiting: Pending[] = [];
  private inFlight = 0;
  private running = false;
  private closed = false;
  private closing: Promise<void> | undefined;
  private idleWaiters: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** A full or broken disk fails every write: each failure is counted (onError), the log hears of them rarely. */
  private failureLog: RareLog;

  /** Opens (or creates) the log and finds where its chain stands; throws if the file cannot be opened. */
  constructor(
    readonly path: string,
    settings: AuditWriterSettings,
    io: Partial<AuditIo> = {},
  ) {
    this.settings = settings;
    this.failureLog = new RareLog(settings.log ?? silentLogger, 'error', 'audit log write failed');
    this.io = { ...nodeIo, ...io };
    fs.mkdirSync(dirname(path), { recursive: true, mode: 0o750 });
    const state = this.recover();
    this.chainHead = state.head;
    this.needsNewline = state.needsNewline;
    this.startTimer();
  }

  /** The last record written: its seq and the hash the next record's `prev` will carry. */
  get head(): ChainHead {
    return this.chainHead;
  }

  /** Records accepted and not yet written. */
  get pending(): number {
    return this.queue.length + this.inFlight;
  }

  /** Applies new settings (a config reload reusing this writer); the path stays. */
  configure(settings: AuditWriterSettings): void {
    this.settings = settings;
    this.failureLog = new RareLog(settings.log ?? silentLogger, 'error', 'audit log write failed');
    this.startTimer();
    this.admitWaiting();
  }

  /**
   * Queues a record; resolves once it is written (and fsync'd with fsync: record), or at once with
   * `dropped` if the queue is full and whenFull is drop. Rejects if the write fails.
   */
  append(fields: Readonly<Record<string, unknown>>): Promise<AppendResult> {
    return new Promise((resolve, reject) => {
      if (this.closed) {
        reject(new Error(`audit log ${this.path} is closed`));
        return;
      }
      const item: Pending = { fields, resolve, reject };
      if (this.waiting.length > 0 || this.pending >= this.settings.queueSize) {
        if (this.settings.whenFull === 'drop') resolve('dropped');
        else this.waiting.push(item);
        return;
      }
      this.queue.push(item);
      this.kick();
    });
  }

  /** Writes everything accepted so far, fsyncs and closes the file. */
  close(): Promise<void> {
    return (this.closing ??= this.shutdown());
  }

  private async shutdown(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    if (this.running || this.queue.length > 0 || this.waiting.length > 0) {
      await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    }
    if (this.fd < 0) return;
    try {
      if (this.dirty) await this.io.fsync(this.fd);
    } finally {
      fs.closeSync(this.fd);
      this.fd = -1;
    }
  }

  private startTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.settings.fsync !== 'interval' || this.closed) return;
    this.timer = setInterval(() => {
      if (!this.dirty) return;
      this.syncDue = true;
      this.kick();
    }, this.settings.fsyncIntervalMs);
    this.timer.unref();
  }

  private kick(): void {
    if (this.running) return;
    this.running = true;
    void this.run();
  }

  private async run(): Promise<void> {
    while (this.queue.length > 0 || this.syncDue) {
      if (this.queue.length === 0) {
        this.syncDue = false;
        await this.syncNow();
        continue;
      }
      const batch = this.queue.splice(0, MAX_BATCH);
      this.inFlight += batch.length;
      try {
        await this.writeBatch(batch);
        for (const item of batch) item.resolve('written');
      } catch (err) {
        this.needsRecovery = true;
        this.failed('write', err);
        for (const item of batch) item.reject(err);
      }
      this.inFlight -= batch.length;
      this.admitWaiting();
    }
    this.running = false;
    const idle = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of idle) resolve();
  }

  private admitWaiting(): void {
    while (this.waiting.length > 0 && this.pending < this.settings.queueSize) {
      this.queue.push(this.waiting.shift() as Pending);
    }
    if (this.queue.length > 0) this.kick();
  }

  private async writeBatch(batch: readonly Pending[]): Promise<void> {
    if (this.needsRecovery) this.reopen();
    let head = this.chainHead;
    let chunk: Buffer[] = this.needsNewline ? [NEWLINE] : [];
    let chunkBytes = chunk.length;
    for (const item of batch) {
      const next = formatRecord(head, item.fields);
      const bytes = next.line.length + 1;
      if (this.size + chunkBytes > 0 && this.size + chunkBytes + bytes > this.settings.maxBytes) {
        await this.flush(chunk, chunkBytes);
        chunk = [];
        chunkBytes = 0;
        await this.rotate();
      }
      chunk.push(next.line, NEWLINE);
      chunkBytes += bytes;
      head = next.head;
    }
    await this.flush(chunk, chunkBytes);
    this.chainHead = head;
    if (this.settings.fsync === 'record') {
      await this.io.fsync(this.fd);
      this.dirty = false;
    }
  }

  private async flush(chunk: readonly Buffer[], bytes: number): Promise<void> {
    if (bytes === 0) return;
    await this.io.write(this.fd, Buffer.concat(chunk, bytes));
    this.size += bytes;
    this.dirty = true;
    this.needsNewline = false;
  }

  private async syncNow(): Promise<void> {
    if (!this.dirty || this.fd < 0) return;
    try {
      await this.io.fsync(this.fd);
      this.dirty = false;
    } catch (err) {
      this.failed('fsync', err);
    }
  }

  /** `path` → `path.1` → … → `path.<keep>` (the oldest is overwritten), then a fresh `path`. */
  private async rotate(): Promise<void> {
    await this.io.fsync(this.fd);
    fs.closeSync(this.fd);
    this.fd = -1;
    for (let i = this.settings.keep - 1; i >= 1; i--) {
      try {
        await fs.promises.rename(`${this.path}.${i}`, `${this.path}.${i + 1}`);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    await fs.promises.rename(this.path, `${this.path}.1`);
    this.fd = fs.openSync(this.path, 'a', FILE_MODE);
    this.size = 0;
    this.dirty = false;
    syncDirectory(dirname(this.path));
  }

  /** After a failed write the file's tail is unknown: read it back rather than trust our own state. */
  private reopen(): void {
    if (this.fd >= 0) {
      try {
        fs.closeSync(this.fd);
      } catch {
        // Already unusable; the new descriptor is what matters.
      }
      this.fd = -1;
    }
    const state = this.recover();
    this.chainHead = state.head;
    this.needsNewline = state.needsNewline;
    this.needsRecovery = false;
  }

  private recover(): ReturnType<typeof recoverChain> {
    const state = recoverChain(this.path, this.settings.keep);
    this.fd = fs.openSync(this.path, 'a', FILE_MODE);
    this.size = state.size;
    if (state.trailingGarbage) {
      (this.settings.log ?? silentLogger).warn('audit log ends with an incomplete record (interrupted write); the chain continues on a new line', {
        file: state.trailingGarbage.file,
        offset: state.trailingGarbage.offset,
        bytes: state.trailingGarbage.bytes,
        seq: state.head.seq,
      });
    }
    return state;
  }

  private failed(step: 'write' | 'fsync', err: unknown): void {
    try {
      this.settings.onError?.(err);
    } finally {
      this.failureLog.report({ file: this.path, step, error: errorMessage(err) });
    }
  }
}
