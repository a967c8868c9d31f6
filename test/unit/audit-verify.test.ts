import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GENESIS_HASH, checkLine, formatRecord, sha256Hex } from '../../src/audit/line-format';
import { main } from '../../src/cli';
import { rotationOrder } from '../../src/commands/audit-verify';
import { verifyAuditFiles, type VerifyResult } from '../../src/audit/verify';
import { AuditWriter } from '../../src/audit/writer';
import { makeTempDir } from '../support/proxy-harness';

const settings = { fsync: 'record', fsyncIntervalMs: 1000, queueSize: 100, whenFull: 'block', maxBytes: 1 << 30, keep: 3 } as const;

let dir: string;
let file: string;
beforeEach(() => {
  dir = makeTempDir('cri-proxy-audit-verify-');
  file = join(dir, 'audit.log');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function writeRecords(count: number, path = file): Promise<void> {
  const writer = new AuditWriter(path, settings);
  for (let i = 1; i <= count; i++) await writer.append({ method: 'StartContainer', container: { id: `c${i}` } });
  await writer.close();
}

const readLines = (path = file): string[] => readFileSync(path, 'utf8').split('\n').slice(0, -1);
const writeLines = (lines: string[], path = file): void => writeFileSync(path, lines.map((l) => `${l}\n`).join(''));
const offsetOfLine = (lines: string[], n: number): number => lines.slice(0, n - 1).reduce((sum, l) => sum + Buffer.byteLength(l) + 1, 0);

/** Re-signs a record after changing its fields, as a careful forger would. */
function reHash(line: string, change: (r: Record<string, unknown>) => void): string {
  const record = JSON.parse(line) as Record<string, unknown>;
  const { seq, prev } = record as { seq: number; prev: string };
  delete record.hash;
  change(record);
  return formatRecord({ seq: seq - 1, lineHash: prev }, record).line.toString();
}

async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(['audit', 'verify', ...args], { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

const only = (r: VerifyResult): VerifyResult['problems'][number] => {
  expect(r.problems).toHaveLength(1);
  return r.problems[0] as VerifyResult['problems'][number];
};

describe('line format', () => {
  test('hash covers the line without its hash field, prev is the previous line hash', () => {
    const first = formatRecord({ seq: 0, lineHash: GENESIS_HASH }, { method: 'X', seq: 99, hash: 'no' });
    const text = first.line.toString();
    expect(text.startsWith(`{"seq":1,"prev":"${GENESIS_HASH}","method":"X","hash":"`)).toBe(true);
    const hash = text.slice(-66, -2);
    expect(sha256Hex(`{"seq":1,"prev":"${GENESIS_HASH}","method":"X"}`)).toBe(hash);
    expect(first.head).toEqual({ seq: 1, lineHash: sha256Hex(first.line) });
    expect(checkLine(first.line)).toEqual({
      kind: 'record',
      seq: 1,
      prev: GENESIS_HASH,
      lineHash: first.head.lineHash,
      keyed: false,
      macChecked: false,
    });
    expect(checkLine(first.line.subarray(0, 30))).toEqual({ kind: 'truncated', seq: 1 });
    expect(checkLine(Buffer.from('hello')).kind).toBe('malformed');
  });
});

describe('verify', () => {
  test('an intact log passes, with its span and last hash', async () => {
    await writeRecords(5);
    const result = await verifyAuditFiles([file]);
    expect(result).toMatchObject({ ok: true, records: 5, firstSeq: 1, lastSeq: 5, problems: [] });
    expect(result.lastHash).toBe(sha256Hex(readLines()[4] ?? ''));
    const cli = await run(file);
    expect(cli.code).toBe(0);
    expect(cli.out).toContain(`OK: 5 intact records, seq 1..5`);
  });

  test('an edited record: hash mismatch at its line', async () => {
    await writeRecords(5);
    const lines = readLines();
    lines[2] = (lines[2] ?? '').replace('"c3"', '"c9"');
    writeLines(lines);
    const p = only(await verifyAuditFiles([file]));
    expect(p).toMatchObject({ kind: 'edited', file, line: 3, seq: 3, offset: offsetOfLine(lines, 3) });
    const cli = await run(file);
    expect(cli.code).toBe(1);
    expect(cli.out).toContain(`${file}:3: record seq 3 was edited`);
  });

  test('an edited and re-hashed record breaks the link of the next one', async () => {
    await writeRecords(5);
    const lines = readLines();
    lines[2] = reHash(lines[2] ?? '', (r) => (r.container = { id: 'forged' }));
    writeLines(lines);
    expect(only(await verifyAuditFiles([file]))).toMatchObject({ kind: 'broken-link', line: 4, seq: 4 });
  });

  test('a removed record: the gap is named', async () => {
    await writeRecords(6);
    const lines = readLines();
    lines.splice(2, 2);
    writeLines(lines);
    const p = only(await verifyAuditFiles([file]));
    expect(p).toMatchObject({ kind: 'removed', line: 3, seq: 5 });
    expect(p.message).toContain('seq 3..4 missing');
  });

  test('an inserted copy of a record', async () => {
    await writeRecords(5);
    const lines = readLines();
    lines.splice(4, 0, lines[1] ?? '');
    writeLines(lines);
    const p = only(await verifyAuditFiles([file]));
    expect(p).toMatchObject({ kind: 'inserted', line: 5, seq: 2 });
    expect(p.message).toContain(`exact copy of the record at ${file}:2`);
  });

  test('an inserted forged record that links correctly is still found, at its own line', async () => {
    await writeRecords(5);
    const lines = readLines();
    const forged = formatRecord({ seq: 2, lineHash: sha256Hex(lines[1] ?? '') }, { method: 'RemoveContainer' }).line.toString();
    lines.splice(2, 0, forged);
    writeLines(lines);
    const p = only(await verifyAuditFiles([file]));
    expect(p).toMatchObject({ kind: 'inserted', line: 3, seq: 3 });
  });

  test('reordered records', async () => {
    await writeRecords(5);
    const lines = readLines();
    [lines[2], lines[3]] = [lines[3] ?? '', lines[2] ?? ''];
    writeLines(lines);
    const p = only(await verifyAuditFiles([file]));
    expect(p).toMatchObject({ kind: 'reordered', line: 3, seq: 4 });
    expect(p.message).toContain(`seq 3 comes after it, at ${file}:4`);
  });

  test('a truncated last line: file, line and byte offset', async () => {
    await writeRecords(4);
    const text = readFileSync(file);
    writeFileSync(file, text.subarray(0, text.length - 30));
    const lines = readLines();
    const p = only(await verifyAuditFiles([file]));
    expect(p).toMatchObject({ kind: 'truncated', line: 4, seq: 4, offset: offsetOfLine(lines, 4) });
    const cli = await run(file);
    expect(cli.code).toBe(1);
    expect(cli.out).toContain(
      `${file}:4: an incomplete record (seq 4) of ${text.length - 30 - offsetOfLine(lines, 4)} bytes at byte offset ${offsetOfLine(lines, 4)} at the end of the file`,
    );
  });

  test('a line that is not a record', async () => {
    await writeRecords(3);
    const lines = readLines();
    lines.splice(1, 0, 'hello');
    writeLines(lines);
    expect(only(await verifyAuditFiles([file]))).toMatchObject({ kind: 'malformed', line: 2 });
  });

  test('the first record must start from the genesis value', async () => {
    await writeRecords(2);
    const lines = readLines();
    lines[0] = formatRecord({ seq: 0, lineHash: 'f'.repeat(64) }, { method: 'X' }).line.toString();
    writeLines(lines);
    expect(only(await verifyAuditFiles([file]))).toMatchObject({ kind: 'broken-link', line: 1, seq: 1 });
  });

  test('a removed file in the middle of a rotated set shows as removed records', async () => {
    await writeRecords(6);
    const lines = readLines();
    writeLines(lines.slice(0, 2), `${file}.2`);
    writeLines(lines.slice(2, 4), `${file}.1`);
    writeLines(lines.slice(4));
    expect((await verifyAuditFiles([`${file}.2`, `${file}.1`, file])).ok).toBe(true);
    const p = only(await verifyAuditFiles([`${file}.2`, file]));
    expect(p).toMatchObject({ kind: 'removed', file, line: 1, seq: 5 });
  });
});

describe('the verify command', () => {
  test('usage errors exit 2, unreadable files 3', async () => {
    expect((await run()).code).toBe(2);
    expect((await run('--bogus', file)).code).toBe(2);
    expect((await run(join(dir, 'missing.log'))).code).toBe(3);
    expect((await run(dir)).code).toBe(3);
    expect((await run('--help')).code).toBe(0);
  });

  test('one record is "1 intact record"', async () => {
    await writeRecords(1);
    const { code, out } = await run(file);
    expect(code).toBe(0);
    expect(out).toContain('OK: 1 intact record, seq 1..1 in 1 file: ');
  });

  test('--json prints the result', async () => {
    await writeRecords(2);
    const { code, out } = await run('--json', file);
    expect(code).toBe(0);
    expect(JSON.parse(out)).toMatchObject({ ok: true, records: 2, lastSeq: 2 });
  });

  test('a rotated set given in glob order is checked oldest first', () => {
    expect(rotationOrder(['a.log', 'a.log.1', 'a.log.10', 'a.log.2'])).toEqual(['a.log.10', 'a.log.2', 'a.log.1', 'a.log']);
    expect(rotationOrder(['x.2', 'x.1'])).toEqual(['x.2', 'x.1']);
    expect(rotationOrder(['b', 'a'])).toEqual(['b', 'a']);
  });
});
