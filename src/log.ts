/** A small structured JSON logger: one line per record on stderr, fields first-class. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const rank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogFields = Record<string, unknown>;

export interface Logger {
  level: LogLevel;
  enabled(level: LogLevel): boolean;
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

export type LogSink = (line: string) => void;

const stderrSink: LogSink = (line) => {
  process.stderr.write(line);
};

export function createLogger(level: LogLevel = 'info', sink: LogSink = stderrSink, base: LogFields = {}): Logger {
  const state = { level };
  const write = (lvl: LogLevel, msg: string, fields?: LogFields): void => {
    if (rank[lvl] < rank[state.level]) return;
    const record = { time: new Date().toISOString(), level: lvl, msg, ...base, ...fields };
    sink(JSON.stringify(record, errorReplacer) + '\n');
  };
  return {
    get level() {
      return state.level;
    },
    set level(l: LogLevel) {
      state.level = l;
    },
    enabled: (lvl) => rank[lvl] >= rank[state.level],
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
    child: (fields) => createLogger(state.level, sink, { ...base, ...fields }),
  };
}

function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message };
  if (typeof value === 'bigint') return value.toString();
  return value;
}

export const silentLogger: Logger = createLogger('error', () => undefined);

/**
 * The one throttle for logging faults that may repeat on every call (a dead collector, a full disk, a bug in an
 * observer): the first is logged at once, later ones at most once per interval, with how many were not logged
 * since. The numbers themselves are in metrics; this only keeps the log readable.
 */
export class RareLog {
  private suppressed = 0;
  private lastLoggedAt: number | undefined;

  constructor(
    private readonly log: Logger,
    private readonly level: LogLevel,
    private readonly msg: string,
    private readonly intervalMs = 60_000,
    /** Milliseconds on any monotonic scale; tests pass their own clock. */
    private readonly now: () => number = () => performance.now(),
  ) {}

  report(fields: LogFields = {}): void {
    const at = this.now();
    if (this.lastLoggedAt !== undefined && at - this.lastLoggedAt < this.intervalMs) {
      this.suppressed++;
      return;
    }
    this.lastLoggedAt = at;
    const suppressed = this.suppressed;
    this.suppressed = 0;
    this.log[this.level](this.msg, suppressed > 0 ? { ...fields, notLoggedSinceLast: suppressed } : fields);
  }
}
