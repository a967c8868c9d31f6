/** The flags of the proxy itself, which `config print` takes too: a config file and the values that replace what it says. */
import { parseArgs as parseArgv } from 'node:util';
import { DEFAULT_UPSTREAM, type ConfigOverrides } from '../config/load';
import { usageOnError, type CommandHelp } from './usage';

export const PROXY_OPTIONS = `  --config FILE         YAML configuration file (without one, built-in defaults apply)
  --listen ADDRESS      socket kubelet connects to (unix:///path or /path); replaces "listen"
  --upstream ADDRESS    runtime socket; replaces the default backend's endpoint
                        (without a config file: ${DEFAULT_UPSTREAM})
  --http-listen ADDRESS host:port of /healthz, /readyz, /metrics, /pods and /api/pods; "" turns it off; replaces "http.listen"
  --log-level LEVEL     debug, info, warn or error; replaces "logLevel"`;

export const PROXY_HELP: CommandHelp = {
  usage: '[--config FILE] [--listen ADDRESS] [--upstream ADDRESS] [--http-listen ADDRESS] [--log-level LEVEL]',
  summary: 'runs the proxy',
  description:
    'Runs the proxy: serves the CRI on "listen" and passes every call through the interceptor chain to the\n' +
    'runtime. SIGTERM or SIGINT stops it (calls in flight finish), SIGHUP reloads the configuration.',
  options: `${PROXY_OPTIONS}
  --version             print the version and the commit it was built from`,
  exitStatus: {
    OK: 'stopped cleanly on SIGTERM or SIGINT (or printed the help or the version)',
    INPUT_INVALID: 'the configuration (file or flags) is unreadable or invalid',
    START_FAILED: 'a listener could not be opened (address in use, socket directory not creatable, another proxy on the socket)',
    FAILED: 'the proxy failed while running, or did not stop cleanly',
  },
};

const proxyOptions = {
  config: { type: 'string' },
  listen: { type: 'string' },
  upstream: { type: 'string' },
  'http-listen': { type: 'string' },
  'log-level': { type: 'string' },
} as const;

export interface ProxyFlags {
  readonly configFile: string | undefined;
  readonly overrides: ConfigOverrides;
  /** `--version`, where `withVersion` allows it. */
  readonly version: boolean;
  /** Arguments that are not options: the proxy and `config print` take none. */
  readonly positionals: readonly string[];
}

/** Parses the proxy's flags; an unknown option or a missing value is a UsageError. */
export function parseProxyFlags(argv: readonly string[], withVersion = false): ProxyFlags {
  const options = withVersion ? ({ ...proxyOptions, version: { type: 'boolean' } } as const) : proxyOptions;
  const { values, positionals } = usageOnError(() => parseArgv({ args: [...argv], options, strict: true, allowPositionals: true }));
  const overrides: ConfigOverrides = {
    ...(values.listen === undefined ? {} : { listen: values.listen }),
    ...(values.upstream === undefined ? {} : { upstream: values.upstream }),
    ...(values['http-listen'] === undefined ? {} : { httpListen: values['http-listen'] }),
    ...(values['log-level'] === undefined ? {} : { logLevel: values['log-level'] }),
  };
  return { configFile: values.config, overrides, version: 'version' in values && values.version === true, positionals };
}
