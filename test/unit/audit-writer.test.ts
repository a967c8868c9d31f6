import { appendFileSync, existsSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { acquireAuditWriter } from '../../src/audit/shared-writer';
import { verifyAuditFiles } from '../../src/audit/verify';
import { AuditWriter, type AuditIo, type AuditWriterSettings } from '../../src/audit/writer';
import { makeTempDir } from '../support/proxy-harness';
import { gatedIo } from '../support/gated-io';
import { ManualScheduler } from '../support/manual-scheduler';
import { waitFor } from '../support/wait';
import { nodeIo } from '../../src/audit/file-io';

const base: AuditWriterSettings = { fsync: 'record', fsyncIntervalMs: 1000, queueSize: 100, whenFull: 'block', maxBytes: 1 << 30, keep: 3 };

let dir: string;
let file: string;
beforeEach(() => {
  dir = makeTempDir('cri-proxy-audit-writer-');
  file = join(dir, 'logs', 'audit.log');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const records = (path = file): Record<string, unknown>[] =>
  readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{') && l.endsWith('}'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

async function writeN(writer: AuditWriter, n: number, tag = 'r'): Promise<void> {
  for (let i = 0; i < n; i++) await writer.append({ method: 'StartContainer', tag: `${tag}${i}`, pad: 'x'.repeat(100) });
}

test('records are numbered from 1 and chained; the directory is created', async () => {
  const writer = new AuditWriter(file, base);
  await writeN(writer, 3);
  expect(writer.head.seq).toBe(3);
  await writer.close();
  expect(records().map((r) => r.seq)).toEqual([1, 2, 3]);
  expect((await verifyAuditFiles([file])).ok).toBe(true);
  expect(statSync(file).mode & 0o777).toBe(0o640);
});

test('concurrent appends are written in the order they were made', async () => {
  const writer = new AuditWriter(file, base);
  await Promise.all(Array.from({ length: 50 }, (_, i) => writer.append({ n: i })));
  await writer.close();
  expect(records().map((r) => r.n)).toEqual(Array.from({ length: 50 }, (_, i) => i));
});

test('rotation keeps N files and the chain runs across them', async () => {
  const writer = new AuditWriter(file, { ...base, maxBytes: 1024, keep: 3 });
  await writeN(writer, 40);
  await writer.close();
  expect([1, 2, 3].map((i) => existsSync(`${file}.${i}`))).toEqual([true, true, true]);
  expect(existsSync(`${file}.4`)).toBe(false);
  for (const f of [file, `${file}.1`, `${file}.2`, `${file}.3`]) expect(statSync(f).size).toBeLessThanOrEqual(1024);
  const result = await verifyAuditFiles([`${file}.3`, `${file}.2`, `${file}.1`, file]);
  expect(result).toMatchObject({ ok: true, lastSeq: 40 });
  expect(result.firstSeq).toBeGreaterThan(1);
  // The first record of each file links to the last of the one before.
  expect(records(file)[0]?.seq).toBe((records(`${file}.1`).at(-1)?.seq as number) + 1);
});

test('a new writer on the same file continues the chain (restart)', async () => {
  let writer = new AuditWriter(file, base);
  await writeN(writer, 3);
  await writer.close();
  writer = new AuditWriter(file, base);
  expect(writer.head.seq).toBe(3);
  await writeN(writer, 2);
  await writer.close();
  expect(await verifyAuditFiles([file])).toMatchObject({ ok: true, records: 5, lastSeq: 5 });
});

test('a restart right after rotation continues from the newest rotated file', async () => {
  const writer = new AuditWriter(file, base);
  await writeN(writer, 3);
  await writer.close();
  renameSync(file, `${file}.1`);
  writeFileSync(file, '');
  const next = new AuditWriter(file, base);
  await writeN(next, 1);
  await next.close();
  expect(records()[0]?.seq).toBe(4);
  expect((await verifyAuditFiles([`${file}.1`, file])).ok).toBe(true);
});

test('after a torn write the next record starts on a new line and the chain goes on', async () => {
  const writer = new AuditWriter(file, base);
  await writeN(writer, 3);
  await writer.close();
  const intact = statSync(file).size;
  const lastLine = readFileSync(file, 'utf8').split('\n')[2] ?? '';
  appendFileSync(file, lastLine.slice(0, 40).replace('"seq":3', '"seq":4'));
  const next = new AuditWriter(file, base);
  expect(next.head.seq).toBe(3);
  await writeN(next, 2);
  await next.close();
  const result = await verifyAuditFiles([file]);
  expect(result).toMatchObject({ records: 5, lastSeq: 5 });
  expect(result.problems).toEqual([expect.objectContaining({ kind: 'truncated', line: 4, offset: intact, seq: 4 })]);
});

test('whenFull: block holds appends until there is room, then writes them in order', async () => {
  const gate = gatedIo();
  const writer = new AuditWriter(file, { ...base, queueSize: 1 }, gate.io);
  const done: number[] = [];
  const appends = [0, 1, 2].map((n) => writer.append({ n }).then(() => done.push(n)));
  await waitFor(() => gate.writes() === 1);
  // A turn of the event loop: anything resolved by then would show.
  await new Promise((resolve) => setImmediate(resolve));
  expect(done).toEqual([]);
  expect(writer.pending).toBe(1);
  gate.open();
  await Promise.all(appends);
  await writer.close();
  expect(done).toEqual([0, 1, 2]);
  expect(records().map((r) => r.n)).toEqual([0, 1, 2]);
});

test('whenFull: drop answers at once and writes what it accepted', async () => {
  const gate = gatedIo();
  const writer = new AuditWriter(file, { ...base, queueSize: 1, whenFull: 'drop' }, gate.io);
  const first = writer.append({ n: 0 });
  expect(await writer.append({ n: 1 })).toBe('dropped');
  expect(await writer.append({ n: 2 })).toBe('dropped');
  gate.open();
  expect(await first).toBe('written');
  await writer.close();
  expect(records().map((r) => r.n)).toEqual([0]);
});

test('a failed write rejects its records; the writer recovers and the chain stays intact', async () => {
  let failNext = false;
  const onError = jest.fn();
  const io: Partial<AuditIo> = {
    write: async (fd, data) => {
      if (!failNext) return nodeIo.write(fd, data);
      failNext = false;
      // Half a record reaches the disk, then the device gives up.
      await nodeIo.write(fd, data.subarray(0, Math.floor(data.length / 2)));
      throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
    },
  };
  const onRollback = jest.fn();
  const writer = new AuditWriter(file, { ...base, onError, onRollback }, io);
  await writeN(writer, 2);
  const intact = statSync(file).size;
  failNext = true;
  await expect(writer.append({ n: 'lost' })).rejects.toThrow('ENOSPC');
  expect(onError).toHaveBeenCalledTimes(1);
  // All or nothing: the half record is gone again, the file ends with the last complete one.
  expect(onRollback.mock.calls).toEqual([[true]]);
  expect(statSync(file).size).toBe(intact);
  await writeN(writer, 2, 'after');
  await writer.close();
  const result = await verifyAuditFiles([file]);
  expect(result).toMatchObject({ ok: true, records: 4, lastSeq: 4, problems: [], failedWrites: [] });
  expect(records().map((r) => r.tag)).toEqual(['r0', 'r1', 'after0', 'after1']);
});

test('fsync: record syncs every batch, interval only on the timer', async () => {
  const syncs = { record: 0, interval: 0 };
  const counting = (mode: 'record' | 'interval'): Partial<AuditIo> => ({
    fsync: (fd) => {
      syncs[mode] += 1;
      return nodeIo.fsync(fd);
    },
  });
  const perRecord = new AuditWriter(file, base, counting('record'));
  await writeN(perRecord, 3);
  expect(syncs.record).toBe(3);
  await perRecord.close();
  const scheduler = new ManualScheduler();
  const settings = { ...base, fsync: 'interval' as const, fsyncIntervalMs: 20, scheduler };
  const interval = new AuditWriter(join(dir, 'b.log'), settings, counting('interval'));
  await writeN(interval, 3);
  expect(syncs.interval).toBe(0);
  scheduler.advance(20);
  await waitFor(() => syncs.interval === 1);
  await interval.close();
});

test('appends after close are refused', async () => {
  const writer = new AuditWriter(file, base);
  await writer.close();
  await expect(writer.append({})).rejects.toThrow('closed');
});

test('one writer per path: leases share it and the last release closes it', async () => {
  const a = acquireAuditWriter({ path: file, ...base });
  const b = acquireAuditWriter({ path: join(dir, 'logs', '.', 'audit.log'), ...base, queueSize: 5 });
  expect(b.writer).toBe(a.writer);
  await a.release();
  await a.release();
  await b.writer.append({ still: 'open' });
  await b.release();
  await expect(b.writer.append({})).rejects.toThrow('closed');
  const c = acquireAuditWriter({ path: file, ...base });
  expect(c.writer).not.toBe(a.writer);
  expect(c.writer.head.seq).toBe(1);
  await c.release();
});
