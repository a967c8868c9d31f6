/** The audit writer on a bad day: failed writes and fsyncs undone, rollbacks that fail, calls that wait too long. */
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { verifyAuditFiles } from '../../src/audit/verify';
import { AuditTimeoutError, AuditWriter, type AuditIo, type AuditWriterSettings } from '../../src/audit/writer';
import { main } from '../../src/cli';
import { makeTempDir } from '../support/proxy-harness';
import { gatedIo } from '../support/gated-io';
import { ManualScheduler } from '../support/manual-scheduler';
import { waitFor } from '../support/wait';
import { nodeIo } from '../../src/audit/file-io';

const base: AuditWriterSettings = { fsync: 'record', fsyncIntervalMs: 1000, queueSize: 100, whenFull: 'block', maxBytes: 1 << 30, keep: 3 };
const enospc = (): Error => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });

let dir: string;
let file: string;
beforeEach(() => {
  dir = makeTempDir('cri-proxy-audit-faults-');
  file = join(dir, 'audit.log');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const lines = (path = file): string[] => readFileSync(path, 'utf8').split('\n').slice(0, -1);
const tags = (path = file): unknown[] =>
  lines(path)
    .filter((l) => l.startsWith('{') && l.endsWith('}'))
    .map((l) => (JSON.parse(l) as { tag?: unknown }).tag);

/** Writes go through until `failWrites` is set: then half the data reaches the file and the write fails. */
function faultyIo(): { io: Partial<AuditIo>; failWrites: boolean; failTruncates: number; failFsync: boolean } {
  const state = {
    failWrites: false,
    failTruncates: 0,
    failFsync: false,
    io: {} as Partial<AuditIo>,
  };
  state.io = {
    write: async (fd, data) => {
      if (!state.failWrites) return nodeIo.write(fd, data);
      await nodeIo.write(fd, data.subarray(0, Math.floor(data.length / 2)));
      throw enospc();
    },
    fsync: (fd) => (state.failFsync ? Promise.reject(new Error('EIO: i/o error, fsync')) : nodeIo.fsync(fd)),
    truncate: (fd, length) => {
      if (state.failTruncates === 0) return nodeIo.truncate(fd, length);
      state.failTruncates -= 1;
      return Promise.reject(new Error('EPERM: operation not permitted, ftruncate'));
    },
  };
  return state;
}

test('a failed fsync (fsync: record) undoes the write it was for', async () => {
  const faults = faultyIo();
  const onRollback = jest.fn();
  const writer = new AuditWriter(file, { ...base, onRollback }, faults.io);
  await writer.append({ tag: 'kept' });
  const intact = statSync(file).size;
  faults.failFsync = true;
  await expect(writer.append({ tag: 'unsynced' })).rejects.toThrow('EIO');
  expect(statSync(file).size).toBe(intact);
  faults.failFsync = false;
  await writer.append({ tag: 'next' });
  await writer.close();
  expect(onRollback.mock.calls).toEqual([[true]]);
  expect(tags()).toEqual(['kept', 'next']);
  expect(await verifyAuditFiles([file])).toMatchObject({ ok: true, records: 2, problems: [] });
});

test('a rollback that fails: the next record marks the bytes, and verify tells them from a crash', async () => {
  const faults = faultyIo();
  const onRollback = jest.fn();
  const writer = new AuditWriter(file, { ...base, onRollback }, faults.io);
  await writer.append({ tag: 'a' });
  const torn = statSync(file).size;
  faults.failWrites = true;
  // The file cannot be cut back (append-only, say): now, and again before the next write.
  faults.failTruncates = 2;
  await expect(writer.append({ tag: 'lost', pad: 'x'.repeat(200) })).rejects.toThrow('ENOSPC');
  const left = statSync(file).size - torn;
  expect(left).toBeGreaterThan(0);
  faults.failWrites = false;
  await writer.append({ tag: 'b' });
  await writer.close();
  expect(onRollback.mock.calls).toEqual([[false]]);
  const marker = JSON.parse(lines()[2] ?? '') as Record<string, unknown>;
  expect(marker).toMatchObject({
    seq: 2,
    writeFailed: {
      offset: torn,
      bytes: left,
      error: 'ENOSPC: no space left on device, write',
      rollbackError: 'EPERM: operation not permitted, ftruncate',
    },
  });
  expect(tags()).toEqual(['a', undefined, 'b']);
  const result = await verifyAuditFiles([file]);
  expect(result).toMatchObject({ ok: true, records: 3, lastSeq: 3, problems: [] });
  expect(result.failedWrites).toEqual([{ file, line: 2, offset: torn, bytes: left, markedBy: 2 }]);
  let out = '';
  expect(await main(['audit', 'verify', file], { out: (t) => (out += t), err: () => undefined })).toBe(0);
  expect(out).toContain(`NOTE: ${file}:2: ${left} bytes at byte offset ${torn}`);

  // The same torn bytes without the marker after them are a crash: an interrupted write, and the check fails.
  const crashed = join(dir, 'crashed.log');
  writeFileSync(
    crashed,
    lines()
      .slice(0, 2)
      .map((l) => `${l}\n`)
      .join(''),
  );
  expect((await verifyAuditFiles([crashed])).problems.map((p) => p.kind)).toEqual(['truncated']);
});

test('a rollback that fails at first but works before the next write leaves a clean file', async () => {
  const faults = faultyIo();
  const onRollback = jest.fn();
  const writer = new AuditWriter(file, { ...base, onRollback }, faults.io);
  await writer.append({ tag: 'a' });
  faults.failWrites = true;
  faults.failTruncates = 1;
  await expect(writer.append({ tag: 'lost' })).rejects.toThrow('ENOSPC');
  faults.failWrites = false;
  await writer.append({ tag: 'b' });
  await writer.close();
  expect(onRollback.mock.calls).toEqual([[false], [true]]);
  expect(tags()).toEqual(['a', 'b']);
  expect(await verifyAuditFiles([file])).toMatchObject({ ok: true, records: 2, problems: [], failedWrites: [] });
});

test('a batch split by a rotation: the part written stands, the part that failed is undone', async () => {
  const faults = faultyIo();
  const gate = gatedIo();
  let writes = 0;
  const io: Partial<AuditIo> = {
    ...faults.io,
    write: async (fd, data) => {
      writes += 1;
      // The first write is held so that the next three appends form one batch.
      if (writes === 1) return gate.io.write?.(fd, data);
      if (writes === 3) faults.failWrites = true;
      try {
        return await faults.io.write?.(fd, data);
      } finally {
        faults.failWrites = false;
      }
    },
  };
  const writer = new AuditWriter(file, { ...base, maxBytes: 700 }, io);
  const pad = 'x'.repeat(120);
  const first = writer.append({ tag: 'r1', pad });
  await waitFor(() => writes === 1);
  const batch = [writer.append({ tag: 'r2', pad }), writer.append({ tag: 'r3', pad }), writer.append({ tag: 'r4', pad })];
  const outcomes = Promise.allSettled(batch);
  gate.open();
  await first;
  const [r2, r3, r4] = await outcomes;
  // r2 fills the first file; r3 and r4 go to the new one, whose write fails.
  expect([r2?.status, r3?.status, r4?.status]).toEqual(['fulfilled', 'rejected', 'rejected']);
  await writer.append({ tag: 'r5', pad });
  await writer.close();
  expect(tags(`${file}.1`)).toEqual(['r1', 'r2']);
  expect(tags()).toEqual(['r5']);
  expect(await verifyAuditFiles([`${file}.1`, file])).toMatchObject({ ok: true, records: 3, problems: [] });
});

describe('writeTimeoutMs', () => {
  test('a call waiting for room is failed and its record withdrawn; one being written still lands', async () => {
    const gate = gatedIo();
    const scheduler = new ManualScheduler();
    const onTimeout = jest.fn();
    const writer = new AuditWriter(file, { ...base, queueSize: 1, timeoutMs: 1000, scheduler, onTimeout }, gate.io);
    const writing = writer.append({ tag: 'writing' });
    await waitFor(() => gate.writes() === 1);
    scheduler.advance(500);
    const waiting = writer.append({ tag: 'waiting' });
    scheduler.advance(600);
    await expect(writing).rejects.toThrow(AuditTimeoutError);
    await expect(writing).rejects.toThrow('no audit record written within 1000 ms (waited for the write)');
    expect(onTimeout).toHaveBeenCalledTimes(1);
    scheduler.advance(500);
    await expect(waiting).rejects.toThrow('(waited for room in the queue; the record was withdrawn)');
    expect(onTimeout).toHaveBeenCalledTimes(2);
    gate.open();
    await writer.close();
    expect(tags()).toEqual(['writing']);
    expect(await verifyAuditFiles([file])).toMatchObject({ ok: true, records: 1 });
  });

  test('records written in time are not affected, and no timer is left behind', async () => {
    const scheduler = new ManualScheduler();
    const writer = new AuditWriter(file, { ...base, timeoutMs: 1000, scheduler });
    expect(await writer.append({ tag: 'a' })).toBe('written');
    expect(scheduler.pending).toBe(0);
    scheduler.advance(5000);
    await writer.close();
    expect(tags()).toEqual(['a']);
  });
});
