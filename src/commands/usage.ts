/**
 * What every command shares about its command line: one shape of help text, `--help` anywhere, and usage errors
 * told in two lines (the problem, then where the help is) rather than followed by the whole help.
 */
import { errorMessage } from '../errors';
import { ExitCode, exitCodeMeaning, exitCodesHelp, type ExitStatus } from './exit-codes';
import type { CommandOutput } from './output';

/** A command's help: its usage, what it does, its options and the exit codes it can end with. */
export interface CommandHelp {
  /** The command line after the program name, e.g. `config validate FILE`. */
  readonly usage: string;
  /** One line, for the list of commands. */
  readonly summary: string;
  /** What it does, in a few lines. */
  readonly description: string;
  /** The options, one per line, indented by two and described from column 25; `-h, --help` is added. */
  readonly options?: string;
  /** A section of its own before the exit status (the top-level help's list of commands). */
  readonly more?: string;
  /** The codes this command can end with, each with what it means here; USAGE (exit 2) is added. */
  readonly exitStatus: ExitStatus;
}

/** A subcommand, e.g. `config validate`. */
export interface Command {
  /** The words after the program name. */
  readonly name: string;
  readonly help: CommandHelp;
  /** `argv` is what follows the command's words; `--help` has been handled. Throws UsageError for a wrong command line. */
  run(argv: readonly string[], output: CommandOutput): Promise<number>;
}

export const PROGRAM = 'cri-proxy';

export function helpText(help: CommandHelp): string {
  const parts = [`Usage: ${PROGRAM} ${help.usage}`.trimEnd(), help.description];
  const options = [...(help.options === undefined ? [] : [help.options]), '  -h, --help            show this help'];
  parts.push(`Options:\n${options.join('\n')}`);
  if (help.more !== undefined) parts.push(help.more);
  parts.push(exitCodesHelp({ ...help.exitStatus, USAGE: exitCodeMeaning.USAGE }).trimEnd());
  return `${parts.join('\n\n')}\n`;
}

/** The command line is wrong; the message says how, in one line. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The two lines a usage error prints: `command` is the words after the program name ("" for the proxy itself). */
export function usageErrorText(command: string, problem: string): string {
  const prog = command === '' ? PROGRAM : `${PROGRAM} ${command}`;
  return `${prog}: ${problem}\nRun "${prog} --help" for usage.\n`;
}

/** Whether the arguments ask for help: `-h` or `--help` before any `--`. */
export function wantsHelp(argv: readonly string[]): boolean {
  for (const arg of argv) {
    if (arg === '--') return false;
    if (arg === '-h' || arg === '--help') return true;
  }
  return false;
}

/** Runs a parser (node:util parseArgs, say), turning what it throws into a UsageError of its first sentence. */
export function usageOnError<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    // Read `message` as a property: node's own errors may come from another realm (a test's sandbox, say).
    const message = typeof (err as { message?: unknown } | undefined)?.message === 'string' ? (err as Error).message : errorMessage(err);
    throw new UsageError(message.split(/\.\s/)[0] ?? 'invalid arguments');
  }
}

/** Runs `command` with the arguments after its words: its help on `--help`, exit 2 and two lines on a usage error. */
export async function runCommand(command: Command, argv: readonly string[], output: CommandOutput): Promise<number> {
  if (wantsHelp(argv)) {
    output.out(helpText(command.help));
    return ExitCode.OK;
  }
  try {
    return await command.run(argv, output);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    output.err(usageErrorText(command.name, err.message));
    return ExitCode.USAGE;
  }
}
