import * as fs from 'node:fs';

/** The I/O steps a test may slow down or break; everything else uses node:fs directly. */
export interface AuditIo {
  write(fd: number, data: Buffer): Promise<void>;
  fsync(fd: number): Promise<void>;
  /** Cuts the file back to `length` bytes (the rollback of a failed write). */
  truncate(fd: number, length: number): Promise<void>;
}

export const nodeIo: AuditIo = {
  async write(fd, data) {
    let done = 0;
    while (done < data.length) {
      done += await new Promise<number>((resolve, reject) => {
        fs.write(fd, data, done, data.length - done, null, (err, n) => (err ? reject(err) : resolve(n)));
      });
    }
  },
  fsync: (fd) => new Promise((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve()))),
  truncate: (fd, length) => new Promise((resolve, reject) => fs.ftruncate(fd, length, (err) => (err ? reject(err) : resolve()))),
};

export function syncDirectory(dir: string): void {
  // Makes the renames durable; some filesystems cannot fsync a directory, which is not worth failing over.
  try {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // See above.
  }
}
