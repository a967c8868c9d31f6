/** `cri-proxy config validate FILE` and `cri-proxy config print`: the configuration, without starting anything. */
import { parseArgs } from 'node:util';
import { ConfigError, ConfigReadError, loadConfigFile, type ConfigOverrides } from '../config/load';
import { printableConfig } from '../config/print';
import { deprecatedSettings, describeDeprecated } from '../config/deprecations';
import { errorMessage } from '../errors';
import { parseProxyFlags, PROXY_OPTIONS } from './args';
import { builtinTypes } from './builtin-types';
import { ExitCode } from './exit-codes';
import { processOutput, type CommandOutput } from './output';
import { UsageError, usageOnError, type Command } from './usage';

export function validateConfig(file: string, output: CommandOutput = processOutput): number {
  try {
    const types = builtinTypes();
    const config = loadConfigFile(file, types);
    // Still valid: a deprecated key works, and is reported so that it gets renamed.
    for (const found of deprecatedSettings(config, types)) output.err(`config ${file}: ${describeDeprecated(found)}\n`);
    output.out(`${file}: valid\n`);
    return ExitCode.OK;
  } catch (err) {
    output.err(`${errorMessage(err)}\n`);
    if (err instanceof ConfigReadError) return ExitCode.INPUT_INVALID;
    return err instanceof ConfigError ? ExitCode.CHECK_FAILED : ExitCode.FAILED;
  }
}

/** The effective configuration as YAML: file, flags and defaults, with secrets masked. */
export function printConfig(file: string | undefined, overrides: ConfigOverrides, output: CommandOutput = processOutput): number {
  try {
    const types = builtinTypes();
    output.out(printableConfig(loadConfigFile(file, types, overrides), types));
    return ExitCode.OK;
  } catch (err) {
    output.err(`${errorMessage(err)}\n`);
    return ExitCode.INPUT_INVALID;
  }
}

export const configValidateCommand: Command = {
  name: 'config validate',
  help: {
    usage: 'config validate FILE',
    summary: 'checks a configuration file and the policy files it names',
    description: `Checks a configuration file, and the policy files it names, without starting anything. Every problem is
printed at once, each on its own line with its key path and position, e.g.
  config cri-proxy.yaml: backends[0].endpont: unknown key; expected one of: ... (line 4, column 5)
A key written with an old name is still valid; it is printed with what to write instead.`,
    exitStatus: {
      OK: 'the configuration is valid',
      CHECK_FAILED: 'the configuration is invalid (every problem is printed)',
      INPUT_INVALID: 'the file cannot be read',
    },
  },
  run(argv, output) {
    const { positionals } = usageOnError(() => parseArgs({ args: [...argv], options: {}, strict: true, allowPositionals: true }));
    const [file, ...extra] = positionals;
    if (file === undefined) throw new UsageError('name the FILE to check');
    if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0] ?? ''}" (one FILE at a time)`);
    return Promise.resolve(validateConfig(file, output));
  },
};

export const configPrintCommand: Command = {
  name: 'config print',
  help: {
    usage: 'config print [--config FILE] [OPTIONS]',
    summary: 'prints the configuration the proxy would run with',
    description: `Prints the configuration the proxy would run with, as YAML: the file (or none) with the flags applied and
every default filled in. Secrets (tracing exporter headers, say) are masked.`,
    options: PROXY_OPTIONS,
    exitStatus: {
      OK: 'printed',
      INPUT_INVALID: 'the configuration (file or flags) is unreadable or invalid',
    },
  },
  run(argv, output) {
    const flags = parseProxyFlags(argv);
    const [extra] = flags.positionals;
    if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}" (name the file with --config)`);
    return Promise.resolve(printConfig(flags.configFile, flags.overrides, output));
  },
};
