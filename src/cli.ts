#!/usr/bin/env node
import { App } from './app';
import { parseUnixAddress } from './config/address';
import { runAuditVerify } from './audit/verify-command';
import { runPolicyCheck } from './policies/policy-check-command';
import { ConfigError, USAGE, UsageError, loadConfigFile, parseArgs, type CliCommand } from './config/load';
import { errorMessage } from './errors';
import { notifyReadyOnceRuntimeAnswers, notifySystemd, socketFromSystemd } from './lifecycle/systemd';
import { createLogger } from './log';
import { buildInfo } from './package-files';

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
    case 'version': {
      const { version, commit } = buildInfo();
      process.stdout.write(`cri-proxy ${version} (commit ${commit})\n`);
      return 0;
    }
    case 'config-validate':
      return validateConfig(command.file);
    case 'run':
      return run(command);
  }
}

function validateConfig(file: string): number {
  try {
    loadConfigFile(file);
    process.stdout.write(`${file}: valid\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`${errorMessage(err)}\n`);
    return err instanceof ConfigError ? 1 : 2;
  }
}

async function run(command: Run): Promise<number> {
  let app: App;
  try {
    const config = loadConfigFile(command.configFile, command.overrides);
    const log = createLogger(config.logLevel);
    app = await App.start(config, { log, listenFd: socketFromSystemd(parseUnixAddress(config.listen), log) });
  } catch (err) {
    process.stderr.write(`cri-proxy: ${errorMessage(err)}\n`);
    return err instanceof ConfigError || err instanceof UsageError ? 2 : 3;
  }
  const stopped = new AbortController();
  void notifyReadyOnceRuntimeAnswers(app, app.log, stopped.signal);
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      stopped.abort();
      void notifySystemd(['STOPPING=1'], app.log);
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
        next = loadConfigFile(command.configFile, command.overrides);
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
