/** The command line of the proxy itself and of `config validate`; other commands parse their own arguments. */
import { parseArgs as parseArgv } from 'node:util';
import { DEFAULT_UPSTREAM, type ConfigOverrides } from '../config/load';
import { errorMessage, ProxyError } from '../errors';

export type CliCommand =
  | { readonly command: 'run'; readonly configFile: string | undefined; readonly overrides: ConfigOverrides }
  | { readonly command: 'config-validate'; readonly file: string }
  | { readonly command: 'help' }
  | { readonly command: 'version' };

export const USAGE = `Usage:
  cri-proxy [--config FILE] [--listen ADDRESS] [--upstream ADDRESS] [--log-level LEVEL]
  cri-proxy config validate FILE
  cri-proxy policy check --config FILE [--namespace NS] IMAGE...
  cri-proxy audit verify [--json] FILE...
  cri-proxy --help | --version

Options:
  --config FILE        YAML configuration file (without one, built-in defaults apply)
  --listen ADDRESS     socket kubelet connects to (unix:///path or /path); replaces "listen"
  --upstream ADDRESS   runtime socket; replaces the default backend's endpoint
                       (without a config file: ${DEFAULT_UPSTREAM})
  --log-level LEVEL    debug, info, warn or error; replaces "logLevel"
  -h, --help           show this help
  --version            print the version
`;

/** The command line is wrong; the message ends with the usage text. */
export class UsageError extends ProxyError {
  constructor(readonly problem: string) {
    super('CONFIG_INVALID', `${problem}\n\n${USAGE}`);
  }
}

/** Turns node:util's errors into UsageError, keeping only their first sentence. */
function usageOnError<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw new UsageError(errorMessage(err).split(/\.\s/)[0] ?? 'invalid arguments');
  }
}

function parseConfigCommand(argv: readonly string[]): CliCommand {
  const [sub, ...rest] = argv;
  if (sub !== 'validate') {
    throw new UsageError(sub === undefined ? 'config: missing subcommand "validate"' : `config: unknown subcommand "${sub}"`);
  }
  const { values, positionals } = usageOnError(() =>
    parseArgv({ args: rest, options: { help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: true }),
  );
  if (values.help === true) return { command: 'help' };
  const [file, ...extra] = positionals;
  if (file === undefined || extra.length > 0) throw new UsageError('config validate takes exactly one FILE');
  return { command: 'config-validate', file };
}

/** Subcommands by their first word; each parses the arguments after it. */
const subcommands: ReadonlyMap<string, (argv: readonly string[]) => CliCommand> = new Map([
  ['config', parseConfigCommand],
]);

/** Parses the arguments after the program name. Throws UsageError on anything unknown. */
export function parseArgs(argv: readonly string[]): CliCommand {
  const [first, ...rest] = argv;
  const sub = first === undefined ? undefined : subcommands.get(first);
  if (sub !== undefined) return sub(rest);
  const { values, positionals } = usageOnError(() =>
    parseArgv({
      args: [...argv],
      options: {
        config: { type: 'string' },
        listen: { type: 'string' },
        upstream: { type: 'string' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
      strict: true,
      allowPositionals: true,
    }),
  );
  const [unexpected] = positionals;
  if (unexpected !== undefined) {
    const hint = subcommands.has(unexpected) ? ' (commands go before options)' : '';
    throw new UsageError(`unexpected argument "${unexpected}"${hint}`);
  }
  if (values.help === true) return { command: 'help' };
  if (values.version === true) return { command: 'version' };
  return {
    command: 'run',
    configFile: values.config,
    overrides: { listen: values.listen, upstream: values.upstream, logLevel: values['log-level'] },
  };
}
