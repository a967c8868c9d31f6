import { performance } from 'node:perf_hooks';

/** A pending callback of a Scheduler. */
export interface ScheduledTask {
  cancel(): void;
}

/**
 * Time as the proxy's timers see it: a monotonic clock and one-shot callbacks. Components that wait (quiet
 * periods, debounces, expiry sweeps) take one, so tests drive time instead of sleeping.
 */
export interface Scheduler {
  /** Monotonic milliseconds. */
  now(): number;
  /** Runs `fn` once after `ms`; never keeps the process alive. */
  after(ms: number, fn: () => void): ScheduledTask;
}

export const realScheduler: Scheduler = {
  now: () => performance.now(),
  after: (ms, fn) => {
    const timer = setTimeout(fn, ms);
    timer.unref();
    return { cancel: () => clearTimeout(timer) };
  },
};

/** Waits `ms`, or less if `signal` aborts; leaves no timer or listener behind either way. */
export function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
