#!/usr/bin/env -S node --max-semi-space-size=1
// The V8 flag keeps the young generation at 1 MB a half: idle memory drops by about 15 MB at no cost per call
// (bench/README.md); scripts/run.sh and the systemd unit start the proxy with the same flag.
import { parseProxyFlags } from './commands/args';
import { commands, commandsIn, groupHelp, mainHelp } from './commands/commands';
import { ExitCode } from './commands/exit-codes';
import { processOutput, type CommandOutput } from './commands/output';
import { runProxy } from './commands/run';
import { runCommand, UsageError, usageErrorText, wantsHelp } from './commands/usage';
import { errorMessage } from './errors';
import { buildInfo } from './package-files';

/** Runs one command line; resolves to the exit status (see commands/exit-codes.ts). */
export async function main(argv: readonly string[], output: CommandOutput = processOutput): Promise<number> {
  const [first, second, ...rest] = argv;
  const single = commands.find((c) => c.name === first);
  if (single !== undefined) return runCommand(single, argv.slice(1), output);
  const group = first === undefined ? [] : commandsIn(first);
  if (first !== undefined && group.length > 0) {
    const command = group.find((c) => c.name === `${first} ${second ?? ''}`);
    if (command !== undefined) return runCommand(command, rest, output);
    const names = group.map((c) => c.name.slice(first.length + 1));
    if (second === undefined) return usage(output, first, `name a command: ${names.join(', ')}`);
    if (!wantsHelp([second])) return usage(output, first, `unknown command "${second}" (${first} commands: ${names.join(', ')})`);
    output.out(groupHelp(first));
    return ExitCode.OK;
  }
  if (wantsHelp(argv)) {
    output.out(mainHelp());
    return ExitCode.OK;
  }
  let flags;
  try {
    flags = parseProxyFlags(argv, true);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    return usage(output, '', err.message);
  }
  const [unexpected] = flags.positionals;
  if (unexpected !== undefined) {
    const misplaced = commands.some((c) => c.name.startsWith(`${unexpected} `) || c.name === unexpected);
    return usage(output, '', `unexpected argument "${unexpected}"${misplaced ? ' (commands go before options)' : ''}`);
  }
  if (flags.version) {
    const { version, commit } = buildInfo();
    output.out(`cri-proxy ${version} (commit ${commit})\n`);
    return ExitCode.OK;
  }
  return runProxy(flags.configFile, flags.overrides);
}

function usage(output: CommandOutput, command: string, problem: string): number {
  output.err(usageErrorText(command, problem));
  return ExitCode.USAGE;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
      // Signal handlers keep nothing else alive; exit promptly once stopped.
      if (code !== ExitCode.OK || process.listenerCount('SIGTERM') > 0) process.exit(code);
    },
    (err: unknown) => {
      process.stderr.write(`cri-proxy: ${errorMessage(err)}\n`);
      process.exit(ExitCode.FAILED);
    },
  );
}
