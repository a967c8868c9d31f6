/** `cri-proxy pods`: the pod starts a running proxy kept, read from its admin listener. */
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { parseHostPort, type HostPort } from '../config/address';
import { loadConfigFile } from '../config/load';
import { DEFAULT_HTTP_LISTEN } from '../config/schema';
import { errorMessage } from '../errors';
import { parseDuration } from '../observability/duration';
import { MAX_LIMIT, type PodStartsAnswer } from '../observability/pod-starts-api';
import { builtinTypes } from './builtin-types';
import { ExitCode } from './exit-codes';
import type { CommandOutput } from './output';
import { UsageError, usageOnError, type Command } from './usage';
import { WATCH_WIDTHS, WATERFALL_LEGEND, headerLine, podStartsTable, rowLines } from './pods-table';

const DEFAULT_LIMIT = 50;
const WATCH_EVERY_MS = 2000;
const REQUEST_TIMEOUT_MS = 5000;

interface PodsOptions {
  readonly base: URL;
  readonly query: URLSearchParams;
  readonly json: boolean;
  readonly watch: boolean;
}

/** The configuration cannot be used to find the admin listener. */
class Unusable extends Error {}

/** `cri-proxy pods`; `stop` gives the signal that ends `--watch` (SIGINT or SIGTERM unless a test gives its own). */
export function podsCommand(stop: () => AbortSignal = interrupted): Command {
  return {
    name: 'pods',
    help: {
      usage:
        'pods [--slow] [--namespace NS] [--since DURATION] [--min DURATION] [--limit N] [--json] [--watch] [--config FILE | --url URL]',
      summary: 'the pod starts a running proxy kept, each with a waterfall of where its time went',
      description: `Lists the pod starts a running proxy kept (its admin listener's /api/pods), newest first, each with a compact
waterfall of where its time went: the sandbox (network), image pulls, container creates and starts, and
kubelet's own time between those calls. Without --config or --url it asks http://${DEFAULT_HTTP_LISTEN} (the
default http.listen). Durations are a number and a unit: ms, s, m or h.

${WATERFALL_LEGEND}.`,
      options: `  --slow                slowest first (the slowest of the last 24 hours are kept besides the last ones)
  --namespace NS        only pods of namespace NS
  --since DURATION      only pod starts that finished in the last DURATION, e.g. 30m or 2h
  --min DURATION        only pod starts that took at least DURATION, e.g. 5s or 1m30s
  --limit N             at most N pod starts (default ${DEFAULT_LIMIT})
  --json                print /api/pods's answer as JSON; with --watch, one pod start per line
  --watch               then keep printing each new pod start as it finishes, until interrupted
  --config FILE         the proxy's configuration file: ask the admin listener its http.listen names
  --url URL             ask the admin listener at URL instead, e.g. http://127.0.0.1:9464`,
      exitStatus: {
        OK: 'the pod starts were printed (with --watch: until interrupted)',
        INPUT_INVALID: 'the configuration is unreadable or invalid, or has the admin listener off (http.listen: "")',
        FAILED: 'the admin listener could not be reached, or answered with an error',
      },
    },
    run: (argv, out) => pods(argv, out, stop),
  };
}

async function pods(argv: readonly string[], out: CommandOutput, stop: () => AbortSignal): Promise<number> {
  let options: PodsOptions;
  try {
    options = podsOptions(argv);
  } catch (err) {
    if (!(err instanceof Unusable)) throw err;
    out.err(`cri-proxy pods: ${err.message}\n`);
    return ExitCode.INPUT_INVALID;
  }
  try {
    const answer = await ask(options.base, options.query);
    if (!options.watch) {
      out.out(options.json ? `${JSON.stringify(answer, null, 2)}\n` : podStartsTable(answer));
      return ExitCode.OK;
    }
    await follow(options, answer, out, stop());
    return ExitCode.OK;
  } catch (err) {
    out.err(`cri-proxy pods: ${errorMessage(err)}\n`);
    return ExitCode.FAILED;
  }
}

function podsOptions(argv: readonly string[]): PodsOptions {
  const { values } = usageOnError(() =>
    parseArgs({
      args: [...argv],
      options: {
        slow: { type: 'boolean' },
        namespace: { type: 'string' },
        since: { type: 'string' },
        min: { type: 'string' },
        limit: { type: 'string' },
        json: { type: 'boolean' },
        watch: { type: 'boolean' },
        config: { type: 'string' },
        url: { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    }),
  );
  if (values.config !== undefined && values.url !== undefined) throw new UsageError('give --config or --url, not both');
  const query = new URLSearchParams({ sort: values.slow === true ? 'slowest' : 'newest' });
  if (values.namespace !== undefined) query.set('namespace', values.namespace);
  for (const name of ['since', 'min'] as const) {
    const text = values[name];
    if (text === undefined) continue;
    try {
      parseDuration(text);
    } catch (err) {
      throw new UsageError(`--${name}: ${errorMessage(err)}`, { cause: err });
    }
    query.set(name, text);
  }
  const limit = values.limit === undefined ? DEFAULT_LIMIT : Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT)
    throw new UsageError(`--limit: must be a whole number from 1 to ${MAX_LIMIT}`);
  query.set('limit', String(limit));
  return { base: adminUrl(values.config, values.url), query, json: values.json === true, watch: values.watch === true };
}

/** The admin listener to ask: `--url`, or the `http.listen` of `--config`, or the default one. */
function adminUrl(configFile: string | undefined, url: string | undefined): URL {
  if (url !== undefined) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch (err) {
      throw new UsageError(`--url: "${url}" is not a URL`, { cause: err });
    }
    if (parsed.protocol !== 'http:') throw new UsageError(`--url: "${url}" must be an http:// URL`);
    return parsed;
  }
  let listen: HostPort = parseHostPort(DEFAULT_HTTP_LISTEN);
  if (configFile !== undefined) {
    let configured: HostPort | undefined;
    try {
      configured = loadConfigFile(configFile, builtinTypes()).http.listen.endpoint;
    } catch (err) {
      throw new Unusable(errorMessage(err), { cause: err });
    }
    if (configured === undefined) throw new Unusable(`${configFile}: http.listen is "" (the admin listener is off): nothing to ask`);
    listen = configured;
  }
  const { host, port } = listen;
  // A listener on every interface answers on loopback too.
  const reachable = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return new URL(`http://${reachable.includes(':') ? `[${reachable}]` : reachable}:${port}/`);
}

async function ask(base: URL, query: URLSearchParams): Promise<PodStartsAnswer> {
  const url = new URL(`api/pods?${query.toString()}`, base);
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  } catch (err) {
    const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
    throw new Error(`cannot reach the proxy's admin listener at ${base.origin}${cause} (is the proxy running? see --config, --url)`, {
      cause: err,
    });
  }
  const text = await response.text();
  if (!response.ok) {
    let why = text.trim();
    try {
      const error = (JSON.parse(text) as { error?: unknown }).error;
      if (typeof error === 'string') why = error;
    } catch {
      // Not JSON: the text as it came.
    }
    throw new Error(`${url.origin}${url.pathname} answered ${response.status}: ${why}`);
  }
  return JSON.parse(text) as PodStartsAnswer;
}

/** Prints what is there (oldest first), then each pod start that finishes, until `stop`. */
async function follow(options: PodsOptions, first: PodStartsAnswer, out: CommandOutput, stop: AbortSignal): Promise<void> {
  let last = 0;
  const print = (answer: PodStartsAnswer): void => {
    const fresh = answer.podStarts.filter((s) => s.seq > last).sort((a, b) => a.seq - b.seq);
    for (const start of fresh) out.out(options.json ? `${JSON.stringify(start)}\n` : rowLines(start, WATCH_WIDTHS));
    last = Math.max(last, ...answer.podStarts.map((s) => s.seq));
  };
  if (!options.json) out.out(headerLine(WATCH_WIDTHS));
  print(first);
  // Only what finishes from now on is new; newest first so that a burst over --limit keeps its latest.
  const query = new URLSearchParams(options.query);
  query.set('sort', 'newest');
  query.delete('since');
  for (;;) {
    try {
      await sleep(WATCH_EVERY_MS, undefined, { signal: stop });
    } catch {
      return;
    }
    const answer = await ask(options.base, query);
    // A restarted proxy numbers its pod starts from 1 again.
    if (answer.podStarts.length > 0 && Math.max(...answer.podStarts.map((s) => s.seq)) < last) last = 0;
    print(answer);
  }
}

function interrupted(): AbortSignal {
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return controller.signal;
}
