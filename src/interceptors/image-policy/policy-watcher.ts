/** Notices changes to a rules file, however they are made, and reports them once things settle. */
import { watch, type FSWatcher } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { errorMessage } from '../../errors';
import type { Logger } from '../../log';
import { realScheduler, type ScheduledTask, type Scheduler } from '../../scheduler';

const RELOAD_DEBOUNCE_MS = 100;

/**
 * Watches the file's directory rather than the file: editors replace files by rename and Kubernetes
 * swaps ConfigMap contents through a symlinked directory, neither of which a watch on the old inode
 * sees. Any event in the directory schedules `onChange`; the caller compares contents.
 */
export class PolicyFileWatcher {
  private readonly watcher: FSWatcher | undefined;
  private timer: ScheduledTask | undefined;
  private closed = false;

  constructor(
    file: string,
    private readonly onChange: () => void,
    log: Logger,
    private readonly scheduler: Scheduler = realScheduler,
    private readonly debounceMs = RELOAD_DEBOUNCE_MS,
  ) {
    const path = resolve(file);
    try {
      this.watcher = watch(dirname(path), { persistent: false }, () => this.schedule());
      this.watcher.on('error', (err) => {
        log.error('watching the image policy file failed; changes apply on reload (SIGHUP) only', {
          file,
          error: errorMessage(err),
        });
      });
    } catch (err) {
      log.error('cannot watch the image policy file; changes apply on reload (SIGHUP) only', {
        file,
        error: errorMessage(err),
      });
    }
  }

  private schedule(): void {
    if (this.closed) return;
    this.timer?.cancel();
    this.timer = this.scheduler.after(this.debounceMs, () => {
      this.timer = undefined;
      if (!this.closed) this.onChange();
    });
  }

  close(): void {
    this.closed = true;
    this.timer?.cancel();
    this.watcher?.close();
  }
}
