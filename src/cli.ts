#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { App } from './app';
import { runAuditVerify } from './commands/audit-verify';
import { runPolicyCheck } from './commands/policy-check';
import { USAGE, UsageError, parseArgs, type CliCommand } from './commands/args';
import { validateConfig } from './commands/config-validate';
import { builtinTypes } from './commands/builtin-types';
import { ConfigError, loadConfigFile } from './config/load';
import { errorMessage } from './errors';
import { createLogger } from './log';

type Run = Extract<CliCommand, { command: 'run' }>;

/** Exit codes: 0 ok, 1 a check failed, 2 bad usage or config, 3 the proxy could not start. */
export async function main(argv: readonly string[]): Promise<number> {
  // Tools that check files without starting the proxy take their own arguments.
  if (argv[0] === 'policy') return runPolicyCheck(argv.slice(1));
  if (argv[0] === 'audit') {
    if (argv[1] === 'verify') return runAuditVerify(argv.slice(2));
    process.stderr.write(`cri-proxy: audit: unknown subcommand "${argv[1] ?? ''}"\n\n${USAGE}`);
    return 2;
  }
  let command: CliCommand;
  try {
    command = parseArgs(argv);
  } catch (err) {
    process.stderr.write(`cri-proxy: ${errorMessage(err)}\n`);
    return 2;
  }
  switch (command.command) {
    case 'help':
      process.stdout.write(USAGE);
      return 0;
    case 'version':
      process.stdout.write(`cri-proxy ${packageVersion()}\n`);
      return 0;
    case 'config-validate':
      return validateConfig(command.file);
    case 'run':
      return run(command);
  }
}

async function run(command: Run): Promise<number> {
  let app: App;
  try {
    const config = loadConfigFile(command.configFile, builtinTypes(), command.overrides);
    app = await App.start(config, { log: createLogger(config.logLevel), types: builtinTypes() });
  } catch (err) {
    process.stderr.write(`cri-proxy: ${errorMessage(err)}\n`);
    return err instanceof ConfigError || err instanceof UsageError ? 2 : 3;
  }
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      app.log.info('signal received', { signal });
      app.stop().then(
        () => resolve(0),
        (err: unknown) => {
          app.log.error('unclean stop', { error: errorMessage(err) });
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => {
      let next;
      try {
        next = loadConfigFile(command.configFile, builtinTypes(), command.overrides);
      } catch (err) {
        app.log.error('reload rejected; keeping the current configuration', { error: errorMessage(err) });
        return;
      }
      app.reload(next).catch((err: unknown) => {
        app.log.error('reload failed; keeping the current configuration', { error: errorMessage(err) });
      });
    });
  });
}

function packageVersion(): string {
  let dir = __dirname;
  for (let i = 0; i < 4; i++) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'cri-proxy' && pkg.version) return pkg.version;
    } catch {
      // keep walking up
    }
    dir = path.dirname(dir);
  }
  return 'unknown';
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
      // Signal handlers keep nothing else alive; exit promptly once stopped.
      if (code !== 0 || process.listenerCount('SIGTERM') > 0) process.exit(code);
    },
    (err: unknown) => {
      process.stderr.write(`cri-proxy: ${errorMessage(err)}\n`);
      process.exit(3);
    },
  );
}
