/** The command lines of the proxy itself and of `config validate|print`; `policy` and `audit` parse their own. */
import { parseArgs as parseArgv } from 'node:util';
import { DEFAULT_UPSTREAM, type ConfigOverrides } from '../config/load';
import { errorMessage, ProxyError } from '../errors';
import { exitCodesHelp } from './exit-codes';

/** Which help text `--help` asks for. */
export type HelpTopic = 'main' | 'config validate' | 'config print';

export type CliCommand =
  | { readonly command: 'run'; readonly configFile: string | undefined; readonly overrides: ConfigOverrides }
  | { readonly command: 'config-validate'; readonly file: string }
  | { readonly command: 'config-print'; readonly configFile: string | undefined; readonly overrides: ConfigOverrides }
  | { readonly command: 'help'; readonly topic: HelpTopic }
  | { readonly command: 'version' };

const PROXY_OPTIONS = `  --config FILE         YAML configuration file (without one, built-in defaults apply)
  --listen ADDRESS      socket kubelet connects to (unix:///path or /path); replaces "listen"
  --upstream ADDRESS    runtime socket; replaces the default backend's endpoint
                        (without a config file: ${DEFAULT_UPSTREAM})
  --http-listen ADDRESS host:port of /healthz, /readyz and /metrics; "" turns it off; replaces "http.listen"
  --log-level LEVEL     debug, info, warn or error; replaces "logLevel"`;

export const USAGE = `Usage:
  cri-proxy [--config FILE] [--listen ADDRESS] [--upstream ADDRESS] [--http-listen ADDRESS] [--log-level LEVEL]
  cri-proxy config validate FILE
  cri-proxy config print [--config FILE] [--listen ADDRESS] [--upstream ADDRESS] [--http-listen ADDRESS] [--log-level LEVEL]
  cri-proxy policy check --config FILE [--namespace NS] IMAGE...
  cri-proxy audit verify [--json] FILE...
  cri-proxy pods [--slow] [--namespace NS] [--since DURATION] [--min DURATION] [--json] [--watch] [--config FILE | --url URL]
  cri-proxy --help | --version

Options:
${PROXY_OPTIONS}
  -h, --help            show this help (each command has its own: cri-proxy config validate --help)
  --version             print the version

${exitCodesHelp()}`;

const HELP: Readonly<Record<HelpTopic, string>> = {
  main: USAGE,
  'config validate': `Usage: cri-proxy config validate FILE

Checks a configuration file, and the policy files it names, without starting anything. Every problem is
printed on its own line with its key path and position, e.g.
  config cri-proxy.yaml: backends[0].endpont: unknown key; expected one of: ... (line 4, column 5)

${exitCodesHelp(['OK', 'CHECK_FAILED', 'USAGE', 'INPUT_INVALID'])}`,
  'config print': `Usage: cri-proxy config print [--config FILE] [options]

Prints the configuration the proxy would run with, as YAML: the file (or none) with the flags applied and
every default filled in. Secrets (tracing exporter headers, say) are masked.

Options:
${PROXY_OPTIONS}

${exitCodesHelp(['OK', 'USAGE', 'INPUT_INVALID'])}`,
};

export function helpText(topic: HelpTopic): string {
  return HELP[topic];
}

/** The command line is wrong; the message ends with the usage text of the command concerned. */
export class UsageError extends ProxyError {
  constructor(
    readonly problem: string,
    topic: HelpTopic = 'main',
  ) {
    super('CONFIG_INVALID', `${problem}\n\n${HELP[topic]}`);
  }
}

/** Turns node:util's errors into UsageError, keeping only their first sentence. */
function usageOnError<T>(topic: HelpTopic, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw new UsageError(errorMessage(err).split(/\.\s/)[0] ?? 'invalid arguments', topic);
  }
}

const proxyOptions = {
  config: { type: 'string' },
  listen: { type: 'string' },
  upstream: { type: 'string' },
  'http-listen': { type: 'string' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** The flags of `run` and `config print`: a config file and the values that replace what it says. */
function parseProxyFlags(
  argv: readonly string[],
  topic: HelpTopic,
): { help: boolean; version: boolean; positionals: string[]; configFile: string | undefined; overrides: ConfigOverrides } {
  const options = topic === 'main' ? ({ ...proxyOptions, version: { type: 'boolean' } } as const) : proxyOptions;
  const { values, positionals } = usageOnError(topic, () => parseArgv({ args: [...argv], options, strict: true, allowPositionals: true }));
  const overrides: ConfigOverrides = {
    ...(values.listen === undefined ? {} : { listen: values.listen }),
    ...(values.upstream === undefined ? {} : { upstream: values.upstream }),
    ...(values['http-listen'] === undefined ? {} : { httpListen: values['http-listen'] }),
    ...(values['log-level'] === undefined ? {} : { logLevel: values['log-level'] }),
  };
  const version = 'version' in values && values.version === true;
  return { help: values.help === true, version, positionals, configFile: values.config, overrides };
}

function parseConfigCommand(argv: readonly string[]): CliCommand {
  const [sub, ...rest] = argv;
  if (sub === '-h' || sub === '--help') return { command: 'help', topic: 'main' };
  if (sub === 'print') {
    const flags = parseProxyFlags(rest, 'config print');
    if (flags.help) return { command: 'help', topic: 'config print' };
    const [extra] = flags.positionals;
    if (extra !== undefined)
      throw new UsageError(`config print: unexpected argument "${extra}" (name the file with --config)`, 'config print');
    return { command: 'config-print', configFile: flags.configFile, overrides: flags.overrides };
  }
  if (sub !== 'validate') {
    throw new UsageError(sub === undefined ? 'config: missing subcommand "validate" or "print"' : `config: unknown subcommand "${sub}"`);
  }
  const { values, positionals } = usageOnError('config validate', () =>
    parseArgv({ args: rest, options: { help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: true }),
  );
  if (values.help === true) return { command: 'help', topic: 'config validate' };
  const [file, ...extra] = positionals;
  if (file === undefined || extra.length > 0) throw new UsageError('config validate takes exactly one FILE', 'config validate');
  return { command: 'config-validate', file };
}

/** Subcommands by their first word; each parses the arguments after it. */
const subcommands: ReadonlyMap<string, (argv: readonly string[]) => CliCommand> = new Map([['config', parseConfigCommand]]);

/** Parses the arguments after the program name. Throws UsageError on anything unknown. */
export function parseArgs(argv: readonly string[]): CliCommand {
  const [first, ...rest] = argv;
  const sub = first === undefined ? undefined : subcommands.get(first);
  if (sub !== undefined) return sub(rest);
  const flags = parseProxyFlags(argv, 'main');
  const [unexpected] = flags.positionals;
  if (unexpected !== undefined) {
    const hint = subcommands.has(unexpected) ? ' (commands go before options)' : '';
    throw new UsageError(`unexpected argument "${unexpected}"${hint}`);
  }
  if (flags.help) return { command: 'help', topic: 'main' };
  if (flags.version) return { command: 'version' };
  return { command: 'run', configFile: flags.configFile, overrides: flags.overrides };
}
