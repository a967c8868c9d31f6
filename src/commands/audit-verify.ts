import { stat } from 'node:fs/promises';
import { errorMessage } from '../errors';
import { verifyAuditFiles, type VerifyResult } from '../audit/verify';
import { processOutput, type CommandOutput } from './output';
import { ExitCode, exitCodesHelp } from './exit-codes';

const AUDIT_VERIFY_USAGE = `Usage: cri-proxy audit verify [--json] FILE...

Checks the hash chain of an audit log. Give the files oldest first, e.g. the rotated set
  audit.log.3 audit.log.2 audit.log.1 audit.log
(given the live file and its rotated copies in any order, e.g. "audit.log*", they are put in
rotation order; any other list is checked in the order given).

Reports the first place the chain breaks (edited, removed, inserted or reordered records, a broken link)
and every record cut off by a crash, with file:line and byte offset.

Options:
  --json   print the result as one JSON object

${exitCodesHelp(['OK', 'CHECK_FAILED', 'USAGE', 'INPUT_INVALID'])}`;


/** `cri-proxy audit verify …`: `argv` is what follows `verify`. Resolves to the exit status. */
export async function runAuditVerify(argv: readonly string[], output: CommandOutput = processOutput): Promise<number> {
  const files: string[] = [];
  let json = false;
  let optionsDone = false;
  for (const arg of argv) {
    if (optionsDone || !arg.startsWith('-') || arg === '-') files.push(arg);
    else if (arg === '--') optionsDone = true;
    else if (arg === '--json') json = true;
    else if (arg === '-h' || arg === '--help') {
      output.out(AUDIT_VERIFY_USAGE);
      return ExitCode.OK;
    } else {
      output.err(`cri-proxy audit verify: unknown option ${arg}\n${AUDIT_VERIFY_USAGE}`);
      return ExitCode.USAGE;
    }
  }
  if (files.length === 0) {
    output.err(`cri-proxy audit verify: no files given\n${AUDIT_VERIFY_USAGE}`);
    return ExitCode.USAGE;
  }
  for (const file of files) {
    try {
      if (!(await stat(file)).isFile()) throw new Error('not a regular file');
    } catch (err) {
      output.err(`cri-proxy audit verify: cannot read ${file}: ${errorMessage(err)}\n`);
      return ExitCode.INPUT_INVALID;
    }
  }
  let result: VerifyResult;
  try {
    result = await verifyAuditFiles(rotationOrder(files));
  } catch (err) {
    output.err(`cri-proxy audit verify: ${errorMessage(err)}\n`);
    return ExitCode.INPUT_INVALID;
  }
  output.out(json ? `${JSON.stringify(result)}\n` : summary(result));
  return result.ok ? ExitCode.OK : ExitCode.CHECK_FAILED;
}

function summary(result: VerifyResult): string {
  const lines = result.problems.map((p) => `${p.kind.toUpperCase()}: ${p.message}\n`);
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
