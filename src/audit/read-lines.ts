import { open } from 'node:fs/promises';

/** One line of an audit log file and where it is. */
export interface Line {
  readonly index: number;
  readonly file: string;
  readonly line: number;
  readonly offset: number;
  readonly bytes: Buffer;
  /** False for a last line without `\n`. */
  readonly terminated: boolean;
}

const CHUNK = 1024 * 1024;

/** The lines of the files in order, with their positions; never holds more than a chunk and one line. */
export async function* readLines(files: readonly string[]): AsyncGenerator<Line> {
  let index = 0;
  for (const file of files) {
    const handle = await open(file, 'r');
    try {
      const buf = Buffer.alloc(CHUNK);
      let carry = Buffer.alloc(0);
      let carryOffset = 0;
      let position = 0;
      let line = 0;
      for (;;) {
        const { bytesRead } = await handle.read(buf, 0, CHUNK, position);
        if (bytesRead === 0) break;
        position += bytesRead;
        const data = Buffer.concat([carry, buf.subarray(0, bytesRead)]);
        let start = 0;
        for (let nl = data.indexOf(0x0a); nl !== -1; nl = data.indexOf(0x0a, start)) {
          yield { index: index++, file, line: ++line, offset: carryOffset + start, bytes: data.subarray(start, nl), terminated: true };
          start = nl + 1;
        }
        carryOffset += start;
        carry = data.subarray(start);
      }
      if (carry.length > 0) yield { index: index++, file, line: ++line, offset: carryOffset, bytes: carry, terminated: false };
    } finally {
      await handle.close();
    }
  }
}
