/** `cri-proxy audit verify`: checks an audit log's hash chain (and HMACs, and logged chain heads) offline. */
import { stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { errorMessage } from '../errors';
import { readAuditKey } from '../audit/key-file';
import type { ChainHead } from '../audit/line-format';
import { verifyAuditFiles, type VerifyResult } from '../audit/verify';
import type { CommandOutput } from './output';
import { ExitCode } from './exit-codes';
import { UsageError, usageOnError, type Command } from './usage';

export const auditVerifyCommand: Command = {
  name: 'audit verify',
  help: {
    usage: 'audit verify [--json] [--key FILE]... [--head SEQ:HASH]... FILE...',
    summary: "checks an audit log's hash chain",
    description: `Checks the hash chain of an audit log. Give the files oldest first, e.g. the rotated set
  audit.log.3 audit.log.2 audit.log.1 audit.log
(given the live file and its rotated copies in any order, e.g. "audit.log*", they are put in
rotation order; any other list is checked in the order given).

Reports the first place the chain breaks (edited, removed, inserted or reordered records, a broken link)
and every record cut off by a crash, with file:line and byte offset.`,
    options: `  --json                print the result as one JSON object
  --key FILE            the audit interceptor's keyFile: check every record's HMAC, and that none after the
                        first keyed record lacks one; give each key in use over the files' time, if it changed
  --head SEQ:HASH       a chain head the proxy logged ("audit chain head"): the record of that seq must still
                        have that hash; may be given more than once`,
    exitStatus: {
      OK: 'the chain is intact',
      CHECK_FAILED: 'the chain is broken, cut or rewritten, or records are cut off (each problem is printed)',
      INPUT_INVALID: 'a log file or key file cannot be read',
    },
  },
  run: verify,
};

/** Verifies the files; CHECK_FAILED when the chain is broken or cut. */
async function verify(argv: readonly string[], output: CommandOutput): Promise<number> {
  const { values, positionals: files } = usageOnError(() =>
    parseArgs({
      args: [...argv],
      options: { json: { type: 'boolean' }, key: { type: 'string', multiple: true }, head: { type: 'string', multiple: true } },
      strict: true,
      allowPositionals: true,
    }),
  );
  const checkpoints = (values.head ?? []).map((value) => {
    const head = parseHead(value);
    if (head === undefined) throw new UsageError(`--head ${value}: expected SEQ:HASH (a seq and 64 hex digits)`);
    return head;
  });
  if (files.length === 0) throw new UsageError('name at least one FILE');
  for (const file of files) {
    try {
      if (!(await stat(file)).isFile()) throw new Error('not a regular file');
    } catch (err) {
      output.err(`cri-proxy audit verify: cannot read ${file}: ${errorMessage(err)}\n`);
      return ExitCode.INPUT_INVALID;
    }
  }
  const keys: Buffer[] = [];
  for (const keyFile of values.key ?? []) {
    try {
      keys.push(readAuditKey(keyFile));
    } catch (err) {
      output.err(`cri-proxy audit verify: --key ${keyFile}: ${errorMessage(err)}\n`);
      return ExitCode.INPUT_INVALID;
    }
  }
  let result: VerifyResult;
  try {
    result = await verifyAuditFiles(rotationOrder(files), { keys, checkpoints });
  } catch (err) {
    output.err(`cri-proxy audit verify: ${errorMessage(err)}\n`);
    return ExitCode.INPUT_INVALID;
  }
  output.out(values.json === true ? `${JSON.stringify(result)}\n` : summary(result));
  return result.ok ? ExitCode.OK : ExitCode.CHECK_FAILED;
}

function parseHead(value: string): ChainHead | undefined {
  const match = /^(\d{1,15}):([0-9a-f]{64})$/.exec(value);
  return match?.[1] === undefined || match[2] === undefined ? undefined : { seq: Number(match[1]), lineHash: match[2] };
}

function notes(result: VerifyResult): string[] {
  const lines = result.failedWrites.map(
    (w) =>
      `NOTE: ${w.file}:${w.line}: ${w.bytes} bytes at byte offset ${w.offset} are what a failed write left (a full disk, say); ` +
      `the writer marked them in record seq ${w.markedBy}: no record is missing there\n`,
  );
  if (result.keyed > 0) {
    const how = result.macChecked ? 'each checked with the key' : 'not checked: give --key FILE';
    lines.push(`${result.keyed} record${result.keyed === 1 ? ' carries' : 's carry'} an HMAC, ${how}\n`);
  }
  if (result.checkpoints > 0) lines.push(`${result.checkpoints} logged chain head${result.checkpoints === 1 ? '' : 's'} found as logged\n`);
  return lines;
}

function summary(result: VerifyResult): string {
  const lines = [...result.problems.map((p) => `${p.kind.toUpperCase()}: ${p.message}\n`), ...notes(result)];
  const span = result.firstSeq === undefined ? '' : `, seq ${result.firstSeq}..${result.lastSeq ?? result.firstSeq}`;
  const records = `${result.records} intact record${result.records === 1 ? '' : 's'}`;
  const files = `${result.files.length} file${result.files.length === 1 ? '' : 's'}`;
  const checked = `${records}${span} in ${files}: ${result.files.join(' ')}`;
  if (result.ok) {
    const start = result.firstSeq !== undefined && result.firstSeq > 1 ? ` (earlier records are in older files)` : '';
    lines.push(`OK: ${checked}${start}\n`);
    if (result.lastHash !== undefined) lines.push(`last record hash: ${result.lastHash}\n`);
  } else {
    lines.push(`FAILED: ${checked} before the first problem\n`);
  }
  return lines.join('');
}

/**
 * `x x.1 x.10 x.2` → `x.10 x.2 x.1 x` when the names are a live file and its rotated copies (a shell glob
 * sorts them that way); any other list keeps the order given.
 */
export function rotationOrder(files: readonly string[]): string[] {
  const parsed = files.map((file) => {
    const match = /^(.*)\.(\d+)$/.exec(file);
    return match?.[1] !== undefined && match[2] !== undefined ? { file, base: match[1], n: Number(match[2]) } : { file, base: file, n: 0 };
  });
  const base = parsed[0]?.base;
  // The live file must be among them: that is what makes the numbers rotation numbers.
  if (files.length < 2 || parsed.some((p) => p.base !== base) || !files.includes(base ?? '')) return [...files];
  return parsed.sort((a, b) => b.n - a.n).map((p) => p.file);
}
