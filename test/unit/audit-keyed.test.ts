/** The keyed chain (HMAC with a key file) and the chain heads the writer logs for an off-node copy. */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GENESIS, formatRecord, sha256Hex, type ChainHead } from '../../src/audit/line-format';
import { verifyAuditFiles } from '../../src/audit/verify';
import { AuditWriter, type AuditWriterSettings } from '../../src/audit/writer';
import { main } from '../../src/cli';
import { createLogger } from '../../src/log';
import { makeTempDir } from '../support/proxy-harness';
import { ManualScheduler } from '../support/manual-scheduler';

const KEY = Buffer.from('k3y-S3NT1NEL-0123456789abcdef0123456789abcdef');
const OTHER_KEY = Buffer.from('another-key-0123456789abcdef0123456789abcdef');
const base: AuditWriterSettings = { fsync: 'record', fsyncIntervalMs: 1000, queueSize: 100, whenFull: 'block', maxBytes: 1 << 30, keep: 3 };

let dir: string;
let file: string;
let keyFile: string;
beforeEach(() => {
  dir = makeTempDir('cri-proxy-audit-keyed-');
  file = join(dir, 'audit.log');
  keyFile = join(dir, 'audit.key');
  writeFileSync(keyFile, `${KEY.toString()}\n`, { mode: 0o600 });
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const lines = (): string[] => readFileSync(file, 'utf8').split('\n').slice(0, -1);
const writeLines = (all: readonly string[]): void => writeFileSync(file, all.map((l) => `${l}\n`).join(''));

async function write(n: number, settings: Partial<AuditWriterSettings> = {}, tag = 'r'): Promise<void> {
  const writer = new AuditWriter(file, { ...base, ...settings });
  for (let i = 0; i < n; i++) await writer.append({ method: 'StartContainer', tag: `${tag}${i}` });
  await writer.close();
}

/** What someone who can write the file but has no key can do: rebuild the tail with a valid plain chain. */
function rewriteTail(from: number, change: (r: Record<string, unknown>) => void, key?: Buffer): void {
  const all = lines();
  const kept = all.slice(0, from - 1);
  const before = kept[kept.length - 1];
  let head: ChainHead = before === undefined ? GENESIS : { seq: from - 1, lineHash: sha256Hex(before) };
  for (const line of all.slice(from - 1)) {
    const record = JSON.parse(line) as Record<string, unknown>;
    change(record);
    const next = formatRecord(head, record, key);
    kept.push(next.line.toString());
    head = next.head;
  }
  writeLines(kept);
}

async function verifyCli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(['audit', 'verify', ...args], { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

describe('a keyed chain', () => {
  test('records carry an HMAC, never the key; verify checks it with --key and says so without', async () => {
    await write(3, { key: KEY });
    expect(lines().every((l) => /,"hmac":"[0-9a-f]{64}"\}$/.test(l))).toBe(true);
    expect(readFileSync(file, 'utf8')).not.toContain(KEY.toString());
    expect(await verifyAuditFiles([file], { keys: [KEY] })).toMatchObject({ ok: true, records: 3, keyed: 3, macChecked: true });
    expect(await verifyAuditFiles([file])).toMatchObject({ ok: true, records: 3, keyed: 3, macChecked: false });
    const withKey = await verifyCli('--key', keyFile, file);
    expect(withKey.code).toBe(0);
    expect(withKey.out).toContain('3 records carry an HMAC, each checked with the key');
    expect((await verifyCli(file)).out).toContain('not checked: give --key FILE');
  });

  test('a tail rewritten without the key is found: as unkeyed records, or as HMACs of another key', async () => {
    await write(4, { key: KEY });
    const original = lines();
    rewriteTail(3, (r) => (r.tag = 'forged'));
    // Without the key the forgery is a valid chain; with it, it is not.
    expect((await verifyAuditFiles([file])).ok).toBe(true);
    const unkeyed = await verifyAuditFiles([file], { keys: [KEY] });
    expect(unkeyed.ok).toBe(false);
    expect(unkeyed.problems).toEqual([expect.objectContaining({ kind: 'unkeyed', seq: 3, line: 3 })]);

    writeLines(original);
    rewriteTail(3, (r) => (r.tag = 'forged'), OTHER_KEY);
    const wrongKey = await verifyAuditFiles([file], { keys: [KEY] });
    expect(wrongKey.problems).toEqual([expect.objectContaining({ kind: 'edited', seq: 3 })]);
    expect(wrongKey.problems[0]?.message).toContain('HMAC does not match');

    // A whole log written afresh without the key has no HMAC at all.
    rmSync(file);
    await write(2);
    expect((await verifyAuditFiles([file], { keys: [KEY] })).problems.map((p) => p.kind)).toEqual(['unkeyed']);
  });

  test('a key added later: the plain records before the first keyed one are accepted', async () => {
    await write(2, {}, 'plain');
    await write(2, { key: KEY }, 'keyed');
    expect(await verifyAuditFiles([file], { keys: [KEY] })).toMatchObject({ ok: true, records: 4, keyed: 2, macChecked: true });
  });

  test('a key changed on the way: each part verifies with its key, given both', async () => {
    await write(2, { key: KEY }, 'old');
    await write(2, { key: OTHER_KEY }, 'new');
    expect((await verifyAuditFiles([file], { keys: [KEY] })).problems).toEqual([expect.objectContaining({ kind: 'edited', seq: 3 })]);
    expect(await verifyAuditFiles([file], { keys: [KEY, OTHER_KEY] })).toMatchObject({ ok: true, records: 4, keyed: 4, macChecked: true });
    const otherFile = join(dir, 'other.key');
    writeFileSync(otherFile, OTHER_KEY, { mode: 0o600 });
    expect((await verifyCli('--key', keyFile, '--key', otherFile, file)).code).toBe(0);
  });

  test('--key refuses an exposed or short key file, and --head wants SEQ:HASH', async () => {
    await write(1, { key: KEY });
    writeFileSync(join(dir, 'short.key'), 'short', { mode: 0o600 });
    const short = await verifyCli('--key', join(dir, 'short.key'), file);
    expect(short.code).toBe(3);
    expect(short.err).toContain('at least 32 are needed');
    expect((await verifyCli('--key')).code).toBe(2);
    expect((await verifyCli('--head', '12:abc', file)).code).toBe(2);
  });
});

describe('the chain head in the log', () => {
  interface HeadRecord {
    readonly auditChainHead: { readonly seq: number; readonly hash: string; readonly keyed: boolean; readonly reason: string };
  }
  const heads = (logged: string[]): HeadRecord['auditChainHead'][] =>
    logged.map((l) => JSON.parse(l) as Partial<HeadRecord>).flatMap((r) => (r.auditChainHead ? [r.auditChainHead] : []));

  test('logged on open, every interval when it moved, and on close; verify --head proves it later', async () => {
    const logged: string[] = [];
    const scheduler = new ManualScheduler();
    const log = createLogger('info', (line) => logged.push(line));
    const writer = new AuditWriter(file, { ...base, key: KEY, headLogIntervalMs: 60_000, scheduler, log });
    await writer.append({ tag: 'a' });
    await writer.append({ tag: 'b' });
    scheduler.advance(60_000);
    scheduler.advance(60_000);
    await writer.append({ tag: 'c' });
    await writer.close();
    const result = await verifyAuditFiles([file]);
    expect(heads(logged).map((h) => [h.reason, h.seq, h.keyed])).toEqual([
      ['open', 0, true],
      ['interval', 2, true],
      ['close', 3, true],
    ]);
    expect(heads(logged)[2]?.hash).toBe(result.lastHash);
    expect(logged.join('\n')).not.toContain(KEY.toString());

    const [, second, last] = heads(logged);
    const proved = await verifyCli('--head', `${second?.seq}:${second?.hash}`, '--head', `${last?.seq}:${last?.hash}`, file);
    expect(proved.code).toBe(0);
    expect(proved.out).toContain('2 logged chain heads found as logged');

    // The last record cut off (by someone able to write the file): the logged head says records are missing.
    writeLines(lines().slice(0, 2));
    const cut = await verifyAuditFiles([file], { checkpoints: [{ seq: last?.seq ?? 0, lineHash: last?.hash ?? '' }] });
    expect(cut.problems).toEqual([expect.objectContaining({ kind: 'checkpoint', seq: 3 })]);
    expect(cut.problems[0]?.message).toContain('beyond the last record (seq 2): records were removed from the end');
    // Rewritten (a valid plain chain again): the logged head does not match.
    await write(1, {}, 'again');
    rewriteTail(2, (r) => (r.tag = 'forged'));
    const rewritten = await verifyAuditFiles([file], { checkpoints: [{ seq: second?.seq ?? 0, lineHash: second?.hash ?? '' }] });
    expect(rewritten.problems).toEqual([expect.objectContaining({ kind: 'checkpoint', seq: 2, line: 2 })]);
  });
});
