import type { ScheduledTask, Scheduler } from '../../src/scheduler';

interface Task {
  readonly at: number;
  readonly seq: number;
  readonly fn: () => void;
  cancelled: boolean;
}

/** A Scheduler whose time moves only when the test says so: `advance` runs what falls due, in order. */
export class ManualScheduler implements Scheduler {
  // Not 0: lru-cache reads a start time of 0 as "no TTL".
  private time = 1_000_000;
  private seq = 0;
  private tasks: Task[] = [];

  now(): number {
    return this.time;
  }

  after(ms: number, fn: () => void): ScheduledTask {
    const task: Task = { at: this.time + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.tasks.push(task);
    return { cancel: () => (task.cancelled = true) };
  }

  /** Tasks scheduled and neither run nor cancelled. */
  get pending(): number {
    return this.tasks.filter((t) => !t.cancelled).length;
  }

  /** Moves time forward by `ms`, running each task that falls due (tasks they schedule included) at its time. */
  advance(ms: number): void {
    const until = this.time + ms;
    for (;;) {
      this.tasks = this.tasks.filter((t) => !t.cancelled);
      const due = this.tasks.filter((t) => t.at <= until).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (due === undefined) break;
      this.tasks = this.tasks.filter((t) => t !== due);
      this.time = Math.max(this.time, due.at);
      due.fn();
    }
    this.time = until;
  }
}
