import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { main } from '../../src/cli';
import { verifyAuditFiles } from '../../src/audit/verify';
import { AuditWriter } from '../../src/audit/writer';
import { makeTempDir } from '../support/proxy-harness';

const ROOT = resolve(__dirname, '../..');
const CHILD = join(ROOT, 'test/support/audit-writer-child.ts');
// Runs the TypeScript child without a build: compile each required .ts file on the fly.
const LOADER = `
const ts = require('typescript');
const fs = require('fs');
require.extensions['.ts'] = (m, filename) => {
  const out = ts.transpileModule(fs.readFileSync(filename, 'utf8'), {
    fileName: filename,
    compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
  });
  m._compile(out.outputText, filename);
};
require(process.env.AUDIT_CHILD);
`;

let dir: string;
beforeEach(() => {
  dir = makeTempDir('cri-proxy-audit-crash-');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Starts the child, waits until it has half-written a record, and kills it with SIGKILL. */
async function crashMidWrite(path: string, tearAfter: number): Promise<{ seq: number; offset: number }> {
  const child = spawn(process.execPath, ['-e', LOADER], {
    cwd: ROOT,
    env: { ...process.env, AUDIT_CHILD: CHILD, AUDIT_PATH: path, AUDIT_TEAR_AFTER: String(tearAfter) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const exited = once(child, 'exit');
  const torn = await new Promise<RegExpExecArray>((resolveTorn, reject) => {
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      const match = /torn (\d+) (\d+)\n/.exec(out);
      if (match) resolveTorn(match);
    });
    child.once('exit', (code) => reject(new Error(`child exited (${String(code)}) before tearing a write: ${err}`)));
  });
  child.kill('SIGKILL');
  const [, signal] = (await exited) as [number | null, NodeJS.Signals | null];
  expect(signal).toBe('SIGKILL');
  return { seq: Number(torn[1]), offset: Number(torn[2]) };
}

async function verifyCli(...files: string[]): Promise<{ code: number; out: string }> {
  let out = '';
  const code = await main(['audit', 'verify', ...files], { out: (t) => (out += t), err: (t) => (out += t) });
  return { code, out };
}

test('SIGKILL mid-write: verify locates the torn record; a new writer continues the chain after it', async () => {
  const path = join(dir, 'audit.log');
  const torn = await crashMidWrite(path, 5);
  expect(torn).toEqual({ seq: 6, offset: expect.any(Number) as number });
  const bytes = readFileSync(path);
  expect(bytes[bytes.length - 1]).not.toBe(0x0a);

  const afterCrash = await verifyCli(path);
  expect(afterCrash.code).toBe(1);
  expect(afterCrash.out).toContain(
    `TRUNCATED: ${path}:6: an incomplete record (seq 6) of ${bytes.length - torn.offset} bytes at byte offset ${torn.offset} at the end of the file`,
  );
  expect(await verifyAuditFiles([path])).toMatchObject({ records: 5, lastSeq: 5 });

  const writer = new AuditWriter(path, {
    fsync: 'record',
    fsyncIntervalMs: 1000,
    queueSize: 10,
    whenFull: 'block',
    maxBytes: 1 << 30,
    keep: 3,
  });
  expect(writer.head.seq).toBe(5);
  await writer.append({ method: 'StartContainer', after: 'restart' });
  await writer.append({ method: 'StopContainer', after: 'restart' });
  await writer.close();

  const lines = readFileSync(path, 'utf8').split('\n');
  expect((JSON.parse(lines[6] ?? '') as { seq: number }).seq).toBe(6);
  const result = await verifyAuditFiles([path]);
  // The chain is whole (seq 1..7, every link checked); the torn write stays on record, where it happened.
  expect(result).toMatchObject({ records: 7, firstSeq: 1, lastSeq: 7 });
  expect(result.problems).toEqual([expect.objectContaining({ kind: 'truncated', file: path, line: 6, offset: torn.offset, seq: 6 })]);
  const cli = await verifyCli(path);
  expect(cli.code).toBe(1);
  expect(cli.out).toContain(`${path}:6: an incomplete record (seq 6)`);
}, 30_000);
