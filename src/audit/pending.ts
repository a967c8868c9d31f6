import type { ScheduledTask, Scheduler } from '../scheduler';

export type AppendResult = 'written' | 'dropped';

/** A record whose call waited longer than the writer's timeout; it was withdrawn unless already being written. */
export class AuditTimeoutError extends Error {
  override readonly name = 'AuditTimeoutError';
}

/** Where a record is on its way to the file. */
export type Place = 'waiting' | 'queued' | 'writing';

/** One append in the writer: settled once (written, dropped, failed or timed out), whichever comes first. */
export class PendingRecord {
  place: Place;
  private settled = false;
  private timer: ScheduledTask | undefined;

  constructor(
    readonly fields: Readonly<Record<string, unknown>>,
    place: Place,
    private readonly onResolve: (result: AppendResult) => void,
    private readonly onReject: (err: unknown) => void,
  ) {
    this.place = place;
  }

  get done(): boolean {
    return this.settled;
  }

  /** Calls `expire` after `ms` unless settled by then; no timer for 0. */
  arm(scheduler: Scheduler, ms: number, expire: (record: PendingRecord) => void): void {
    if (ms > 0) this.timer = scheduler.after(ms, () => expire(this));
  }

  resolve(result: AppendResult): void {
    if (this.settle()) this.onResolve(result);
  }

  reject(err: unknown): void {
    if (this.settle()) this.onReject(err);
  }

  private settle(): boolean {
    if (this.settled) return false;
    this.settled = true;
    this.timer?.cancel();
    return true;
  }
}
