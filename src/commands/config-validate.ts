/** `cri-proxy config validate FILE`: checks a configuration file without starting anything. */
import { ConfigError, loadConfigFile } from '../config/load';
import { builtinTypes } from './builtin-types';
import { errorMessage } from '../errors';

export function validateConfig(file: string): number {
  try {
    loadConfigFile(file, builtinTypes());
    process.stdout.write(`${file}: valid\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`${errorMessage(err)}\n`);
    return err instanceof ConfigError ? 1 : 2;
  }
}
