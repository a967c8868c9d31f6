import { errorMessage } from '../errors';
import { RareLog, silentLogger, type Logger } from '../log';
import { realScheduler, type ScheduledTask, type Scheduler } from '../scheduler';
import { nodeIo, type AuditIo } from './file-io';
import { ChainHeadLog } from './head-log';
import { formatRecord, type ChainHead } from './line-format';
import { AuditLogFile } from './log-file';
import { AuditTimeoutError, PendingRecord, type AppendResult } from './pending';

export type { AuditIo } from './file-io';
export { AuditTimeoutError, type AppendResult } from './pending';

export interface AuditWriterSettings {
  /** `record`: a record is on disk (fsync'd) before append() resolves; `interval`: fsync every fsyncIntervalMs. */
  readonly fsync: 'record' | 'interval';
  readonly fsyncIntervalMs: number;
  /** Records accepted but not yet written (including those being written). */
  readonly queueSize: number;
  /** When queueSize records are pending: wait for room, or drop the record. */
  readonly whenFull: 'block' | 'drop';
  /** The longest append() waits (for room, then for the write) before it rejects with AuditTimeoutError; 0 never. */
  readonly timeoutMs?: number;
  readonly maxBytes: number;
  /** Rotated files kept: `path.1` (newest) … `path.<keep>`. */
  readonly keep: number;
  /** Records carry an HMAC with this key instead of a plain hash. */
  readonly key?: Buffer | undefined;
  /** The chain head is logged this often when it moved (and on open and close); 0 only on open and close. */
  readonly headLogIntervalMs?: number;
  readonly log?: Logger;
  /** Told about each failed write, fsync or rotation. */
  readonly onError?: (err: unknown) => void;
  /** Told about each rollback of a failed write: whether the file could be cut back to its last record. */
  readonly onRollback?: (rolledBack: boolean) => void;
  /** Told about each append that timed out. */
  readonly onTimeout?: () => void;
  readonly scheduler?: Scheduler;
}

export interface AuditWriterOptions extends AuditWriterSettings {
  readonly path: string;
  readonly io?: Partial<AuditIo>;
}

const NEWLINE = Buffer.from('\n');
/** Records per write(): large enough to amortise fsync under load, small enough to bound one write. */
const MAX_BATCH = 256;

/**
 * The single writer of one audit log: records go out in the order append() was called, each chained to the
 * one before, through one open file descriptor; the file rotates by size and the chain carries on. A write
 * that fails is undone (see AuditLogFile), so every record is all or nothing.
 */
export class AuditWriter {
  private settings: AuditWriterSettings;
  private readonly scheduler: Scheduler;
  private readonly file: AuditLogFile;
  private syncDue = false;
  private readonly queue: PendingRecord[] = [];
  /** Appends waiting for room (whenFull: block), admitted in arrival order. */
  private readonly waiting: PendingRecord[] = [];
  private inFlight = 0;
  private running = false;
  private closed = false;
  private closing: Promise<void> | undefined;
  private idleWaiters: (() => void)[] = [];
  private timer: ScheduledTask | undefined;
  /** A full or broken disk fails every write: each failure is counted (onError), the log hears of them rarely. */
  private failureLog: RareLog;
  private readonly headLog: ChainHeadLog;

  /** Opens (or creates) the log and finds where its chain stands; throws if the file cannot be opened. */
  constructor(
    readonly path: string,
    settings: AuditWriterSettings,
    io: Partial<AuditIo> = {},
  ) {
    this.settings = settings;
    this.scheduler = settings.scheduler ?? realScheduler;
    this.failureLog = new RareLog(this.log, 'error', 'audit log write failed');
    this.file = new AuditLogFile(
      path,
      () => this.settings,
      { ...nodeIo, ...io },
      () => this.log,
    );
    this.headLog = new ChainHeadLog(
      path,
      () => this.file.head,
      () => this.settings.key !== undefined,
      this.scheduler,
    );
    this.headLog.report(this.log, 'open');
    this.headLog.schedule(this.log, settings.headLogIntervalMs ?? 0);
    this.startTimer();
  }

  /** The last record written: its seq and the hash the next record's `prev` will carry. */
  get head(): ChainHead {
    return this.file.head;
  }

  /** Records accepted and not yet written. */
  get pending(): number {
    return this.queue.length + this.inFlight;
  }

  private get log(): Logger {
    return this.settings.log ?? silentLogger;
  }

  /** Applies new settings (a config reload reusing this writer); the path stays. */
  configure(settings: AuditWriterSettings): void {
    this.settings = settings;
    this.failureLog = new RareLog(this.log, 'error', 'audit log write failed');
    this.headLog.schedule(this.log, settings.headLogIntervalMs ?? 0);
    this.startTimer();
    this.admitWaiting();
  }

  /**
   * Queues a record; resolves once it is written (and fsync'd with fsync: record), or at once with
   * `dropped` if the queue is full and whenFull is drop. Rejects if the write fails (nothing of the record is
   * then left in the file), or with AuditTimeoutError after timeoutMs.
   */
  append(fields: Readonly<Record<string, unknown>>): Promise<AppendResult> {
    return new Promise((resolve, reject) => {
      if (this.closed) {
        reject(new Error(`audit log ${this.path} is closed`));
        return;
      }
      const full = this.waiting.length > 0 || this.pending >= this.settings.queueSize;
      if (full && this.settings.whenFull === 'drop') {
        resolve('dropped');
        return;
      }
      const item = new PendingRecord(fields, full ? 'waiting' : 'queued', resolve, reject);
      item.arm(this.scheduler, this.settings.timeoutMs ?? 0, (expired) => this.expire(expired));
      if (full) {
        this.waiting.push(item);
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
    this.timer?.cancel();
    this.headLog.stop();
    if (this.running || this.queue.length > 0 || this.waiting.length > 0) {
      await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    }
    this.headLog.report(this.log, 'close');
    await this.file.close();
  }

  /** A call waited too long: its record is withdrawn unless it is already being written. */
  private expire(item: PendingRecord): void {
    for (const list of [this.waiting, this.queue]) {
      const i = list.indexOf(item);
      if (i >= 0) list.splice(i, 1);
    }
    const where = item.place === 'waiting' ? 'for room in the queue' : item.place === 'queued' ? 'in the queue' : 'for the write';
    const withdrawn = item.place === 'writing' ? '' : '; the record was withdrawn';
    item.reject(new AuditTimeoutError(`no audit record written within ${this.settings.timeoutMs} ms (waited ${where}${withdrawn})`));
    this.settings.onTimeout?.();
    this.admitWaiting();
    if (!this.running) this.wakeIdle();
  }

  private startTimer(): void {
    this.timer?.cancel();
    this.timer = undefined;
    if (this.settings.fsync !== 'interval' || this.closed) return;
    this.timer = this.scheduler.after(this.settings.fsyncIntervalMs, () => {
      this.startTimer();
      if (!this.file.unsynced) return;
      this.syncDue = true;
      this.kick();
    });
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
        await this.file.sync().catch((err: unknown) => this.failed('fsync', err));
        continue;
      }
      const batch = this.queue.splice(0, MAX_BATCH);
      for (const item of batch) item.place = 'writing';
      this.inFlight += batch.length;
      try {
        await this.writeBatch(batch);
      } catch (err) {
        this.failed('write', err);
        for (const item of batch) item.reject(err);
      }
      this.inFlight -= batch.length;
      this.admitWaiting();
    }
    this.running = false;
    this.wakeIdle();
  }

  private wakeIdle(): void {
    if (this.queue.length > 0 || this.waiting.length > 0) return;
    const idle = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of idle) resolve();
  }

  private admitWaiting(): void {
    while (this.waiting.length > 0 && this.pending < this.settings.queueSize) {
      const item = this.waiting.shift() as PendingRecord;
      item.place = 'queued';
      this.queue.push(item);
    }
    if (this.queue.length > 0) this.kick();
  }

  /**
   * Writes the batch as one write() per file it lands in (a rotation can split it); a part that fails is
   * undone, and the records of the parts written before it are resolved.
   */
  private async writeBatch(batch: readonly PendingRecord[]): Promise<void> {
    const lead = await this.file.lead();
    const key = this.settings.key;
    let { head, bytes: chunkBytes } = lead;
    let chunk = lead.chunk;
    let part: PendingRecord[] = [];
    for (const item of batch) {
      const next = formatRecord(head, item.fields, key);
      const bytes = next.line.length + 1;
      const size = this.file.size;
      if (size + chunkBytes > 0 && size + chunkBytes + bytes > this.settings.maxBytes) {
        await this.file.commit(chunk, chunkBytes, head);
        for (const done of part) done.resolve('written');
        part = [];
        chunk = [];
        chunkBytes = 0;
        await this.file.rotate();
      }
      chunk.push(next.line, NEWLINE);
      chunkBytes += bytes;
      head = next.head;
      part.push(item);
    }
    await this.file.commit(chunk, chunkBytes, head);
    for (const done of part) done.resolve('written');
  }

  private failed(step: 'write' | 'fsync', err: unknown): void {
    try {
      this.settings.onError?.(err);
    } finally {
      this.failureLog.report({ file: this.path, step, error: errorMessage(err) });
    }
  }
}
