/**
 * Child process for the crash test: appends audit records in a loop through a real AuditWriter. After
 * AUDIT_TEAR_AFTER records, the next write puts half its bytes on disk, reports `torn <seq> <offset>` on
 * stdout and hangs, so the parent can SIGKILL it with a record cut off mid-write.
 *
 * Env: AUDIT_PATH (log file), AUDIT_TEAR_AFTER (records written whole first).
 */
import { writeSync } from 'node:fs';
import { type AuditIo } from '../../src/audit/writer';
import { AuditWriter } from '../../src/audit/writer';
import { nodeIo } from '../../src/audit/file-io';

const path = process.env.AUDIT_PATH ?? '';
const tearAfter = Number(process.env.AUDIT_TEAR_AFTER ?? '5');
let whole = 0;
let offset = 0;

const io: AuditIo = {
  ...nodeIo,
  async write(fd, data) {
    if (whole < tearAfter) {
      whole += 1;
      offset += data.length;
      return nodeIo.write(fd, data);
    }
    writeSync(fd, data.subarray(0, Math.floor(data.length / 2)));
    process.stdout.write(`torn ${whole + 1} ${offset}\n`);
    // Keep the process alive until it is killed.
    setInterval(() => undefined, 60_000);
    return new Promise<void>(() => undefined);
  },
};

async function main(): Promise<void> {
  const writer = new AuditWriter(
    path,
    { fsync: 'record', fsyncIntervalMs: 1000, queueSize: 10, whenFull: 'block', maxBytes: 1 << 30, keep: 3 },
    io,
  );
  for (let i = 1; ; i++) {
    await writer.append({
      time: new Date().toISOString(),
      method: 'ExecSync',
      container: { id: `c-${i}` },
      command: ['sh', '-c', `echo ${i}`],
    });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${String(err)}\n`);
  process.exit(1);
});
