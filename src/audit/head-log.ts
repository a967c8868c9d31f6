import type { Logger } from '../log';
import type { ScheduledTask, Scheduler } from '../scheduler';
import type { ChainHead } from './line-format';

/**
 * Logs where the chain stands (seq and line hash of the last record) when the log is opened and closed and,
 * when it moved, every interval: a copy of the proxy's logs kept off the node then holds checkpoints that a
 * rewritten or cut tail no longer matches (`audit verify --head SEQ:HASH`).
 */
export class ChainHeadLog {
  private task: ScheduledTask | undefined;
  private logged: number | undefined;

  constructor(
    private readonly file: string,
    private readonly head: () => ChainHead,
    private readonly keyed: () => boolean,
    private readonly scheduler: Scheduler,
  ) {}

  /** (Re)starts the periodic log; 0 turns it off. */
  schedule(log: Logger, intervalMs: number): void {
    this.task?.cancel();
    this.task = undefined;
    if (intervalMs <= 0) return;
    const tick = (): void => {
      if (this.head().seq !== this.logged) this.report(log, 'interval');
      this.task = this.scheduler.after(intervalMs, tick);
    };
    this.task = this.scheduler.after(intervalMs, tick);
  }

  report(log: Logger, reason: 'open' | 'interval' | 'close'): void {
    const { seq, lineHash } = this.head();
    this.logged = seq;
    log.info('audit chain head', { auditChainHead: { file: this.file, seq, hash: lineHash, keyed: this.keyed(), reason } });
  }

  stop(): void {
    this.task?.cancel();
    this.task = undefined;
  }
}
