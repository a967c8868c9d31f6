/** `cri-proxy config validate FILE` and `cri-proxy config print`: the configuration, without starting anything. */
import { ConfigError, ConfigReadError, loadConfigFile, type ConfigOverrides } from '../config/load';
import { printableConfig } from '../config/print';
import { deprecatedSettings, describeDeprecated } from '../config/deprecations';
import { errorMessage } from '../errors';
import { builtinTypes } from './builtin-types';
import { ExitCode } from './exit-codes';
import { processOutput, type CommandOutput } from './output';

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
