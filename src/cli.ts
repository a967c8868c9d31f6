#!/usr/bin/env -S node --max-semi-space-size=1
// The V8 flag keeps the young generation at 1 MB a half: idle memory drops by about 15 MB at no cost per call
// (bench/README.md); scripts/run.sh and the systemd unit start the proxy with the same flag.
import { helpText, parseArgs, type CliCommand } from './commands/args';
import { runAuditVerify } from './commands/audit-verify';
import { printConfig, validateConfig } from './commands/config';
import { ExitCode } from './commands/exit-codes';
import { runPods } from './commands/pods';
import { runPolicyCheck } from './commands/policy-check';
import { runProxy } from './commands/run';
import { errorMessage } from './errors';
import { buildInfo } from './package-files';

/** Runs one command line; resolves to the exit status (see commands/exit-codes.ts). */
export async function main(argv: readonly string[]): Promise<number> {
  // Tools that check files without starting the proxy take their own arguments.
  if (argv[0] === 'policy') return runPolicyCheck(argv.slice(1));
  if (argv[0] === 'pods') return runPods(argv.slice(1));
  if (argv[0] === 'audit') {
    if (argv[1] === 'verify') return runAuditVerify(argv.slice(2));
    process.stderr.write(`cri-proxy: audit: unknown subcommand "${argv[1] ?? ''}"\n\n${helpText('main')}`);
    return ExitCode.USAGE;
  }
  let command: CliCommand;
  try {
    command = parseArgs(argv);
  } catch (err) {
    process.stderr.write(`cri-proxy: ${errorMessage(err)}\n`);
    return ExitCode.USAGE;
  }
  switch (command.command) {
    case 'help':
      process.stdout.write(helpText(command.topic));
      return ExitCode.OK;
    case 'version': {
      const { version, commit } = buildInfo();
      process.stdout.write(`cri-proxy ${version} (commit ${commit})\n`);
      return ExitCode.OK;
    }
    case 'config-validate':
      return validateConfig(command.file);
    case 'config-print':
      return printConfig(command.configFile, command.overrides);
    case 'run':
      return runProxy(command.configFile, command.overrides);
  }
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
