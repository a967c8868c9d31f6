/** A command line from the docs, read against the CLI's own commands: which command it runs, with which options. */
import { PROXY_HELP } from '../../src/commands/args';
import { mainHelp } from '../../src/commands/commands';
import { ExitCode, type ExitCodeName } from '../../src/commands/exit-codes';
import { helpText, type Command } from '../../src/commands/usage';
import { shellWords } from './docs';

export interface DocCommandLine {
  /** The command run; undefined for the proxy itself (or when there is a problem). */
  readonly command: Command | undefined;
  /** Its help text (the top-level help for the proxy itself). */
  readonly help: string;
  /** The options the line gives, long and short (`--config`, `-h`), from a synopsis (`[--key FILE]...`) too. */
  readonly options: readonly string[];
  /** The words after the command's, as written. */
  readonly args: readonly string[];
  readonly problem?: string;
}

/** Reads `cri-proxy …` against `commands`. */
export function commandOf(text: string, commands: readonly Command[]): DocCommandLine {
  const [, ...words] = shellWords(text);
  const [first = '', second = ''] = words;
  const command = commands.find((c) => c.name === `${first} ${second}`) ?? commands.find((c) => c.name === first);
  const args = command === undefined ? words : words.slice(command.name.split(' ').length);
  const options = args.flatMap((word) => word.split(/[[\]|]/)).flatMap((w) => /^(--?[a-z][a-z0-9-]*)/.exec(w)?.[1] ?? []);
  const inGroup = commands.some((c) => c.name.startsWith(`${first} `));
  if (command === undefined && inGroup) {
    const onlyHelp = args.every((a) => ['--help', '-h', first].includes(a));
    return { command, help: '', options, args, ...(onlyHelp ? {} : { problem: `no command "${first} ${second}"` }) };
  }
  // The proxy itself takes no arguments but its options: a word there names a command that does not exist.
  if (command === undefined && first !== '' && !/^[-[]/.test(first))
    return { command, help: '', options, args, problem: `no command "${first}"` };
  return { command, help: command === undefined ? mainHelp() : helpText(command.help), options, args };
}

/** The options a help text lists (`  -h, --help   show this help` gives both). */
export function optionsOf(help: string): Set<string> {
  const options = new Set(['--help', '-h']);
  for (const m of help.matchAll(/^ {2}(?:(-[a-z]), )?(--[a-z][a-z0-9-]*)/gm)) {
    if (m[1] !== undefined) options.add(m[1]);
    if (m[2] !== undefined) options.add(m[2]);
  }
  return options;
}

/** The exit codes a command (or, without one, the proxy) can end with, in order. */
export function exitCodesOf(command: Command | undefined): number[] {
  const status = command === undefined ? PROXY_HELP.exitStatus : command.help.exitStatus;
  const names = [...(Object.keys(status) as ExitCodeName[]), 'USAGE' as const];
  return [...new Set(names.map((name) => ExitCode[name]))].sort((a, b) => a - b);
}
