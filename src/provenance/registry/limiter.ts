/** At most N requests at a time to one registry; the rest wait their turn, each no longer than it may. */

interface Waiter {
  readonly grant: () => void;
  readonly timer: NodeJS.Timeout;
}

export class Semaphore {
  private active = 0;
  private readonly waiting: Waiter[] = [];

  constructor(private readonly limit: number) {}

  /** Resolves with a release function once a slot is free; rejects if none frees up within `waitMs`. */
  acquire(waitMs: number): Promise<() => void> {
    if (this.active < this.limit) {
      this.active++;
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        grant: () => {
          clearTimeout(waiter.timer);
          resolve(this.releaser());
        },
        timer: setTimeout(() => {
          const at = this.waiting.indexOf(waiter);
          if (at !== -1) this.waiting.splice(at, 1);
          reject(new Error(`waited ${waitMs} ms for one of its ${this.limit} connections`));
        }, waitMs),
      };
      this.waiting.push(waiter);
    });
  }

  /** Requests in flight and waiting (for tests and metrics). */
  get load(): { readonly active: number; readonly waiting: number } {
    return { active: this.active, waiting: this.waiting.length };
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      // The slot passes straight to the next waiter, so `active` stays as it is.
      if (next !== undefined) next.grant();
      else this.active--;
    };
  }
}
