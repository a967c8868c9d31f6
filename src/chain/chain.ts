import { ProxyError, errorMessage } from '../errors';
import { globMatcher } from '../policies/glob';
import type { CallContext, Interceptor, MethodInfo, Next } from './types';
import { readsResponse } from './method-table';
import type { Downstream, OwnCall } from './own-call';

export type OnError = 'failOpen' | 'failClosed';

export interface ChainEntry {
  readonly interceptor: Interceptor;
  readonly onError: OnError;
  /** Patterns naming the methods this entry runs for (`Name`, `pkg.Service/Name`, `*` globs); all if absent. */
  readonly methods: readonly string[] | undefined;
  /** How the entry's interceptor makes calls on a client's behalf: bound here to the entries after it. */
  readonly downstream?: Downstream | undefined;
}

/** Told about every interceptor fault, whether the call then failed (failClosed) or went on (failOpen). */
export type FaultListener = (entry: ChainEntry, error: unknown, ctx: CallContext) => void;

export type Terminal<C extends CallContext> = (ctx: C) => Promise<void>;
export type RunChain<C extends CallContext> = (ctx: C) => Promise<void>;

/**
 * Watches calls from outside the chain, before any entry and after the last (the pod-start feed). For the few
 * methods it names, `around` wraps the method's runner once, when the runner is built; every other method's
 * runner is left as it is, so their calls pay nothing for it.
 */
export interface CallObserver<C extends CallContext> {
  around(method: MethodInfo): ((ctx: C, run: RunChain<C>) => Promise<void>) | undefined;
}

/** Errors that come back out of next(): the call's own failure, to pass on untouched. */
const downstreamErrors = new WeakSet();

/**
 * Builds the chain runner: entries in configured order around the terminal step (the call to the runtime).
 * Runners are built once per method and cached, so a call pays only for the entries that apply to it.
 */
export class Chain<C extends CallContext = CallContext> {
  private readonly byPath = new Map<string, RunChain<C>>();
  private readonly ownByPath = new Map<string, RunChain<OwnCall>>();
  private readonly matchers: readonly ((method: MethodInfo) => boolean)[];

  private readonly terminal: Terminal<C>;
  /** The terminal step unwrapped, for methods no entry applies to: nothing sits between it and the server. */
  private readonly bareTerminal: Terminal<C>;
  private readonly onFault: FaultListener;

  constructor(
    readonly entries: readonly ChainEntry[],
    terminal: Terminal<C>,
    onFault: FaultListener,
    private readonly observer?: CallObserver<C>,
  ) {
    this.matchers = entries.map((entry) => compileMethodFilter(entry.methods));
    this.bareTerminal = terminal;
    this.terminal = (ctx) =>
      terminal(ctx).catch((err: unknown) => {
        throw ownBug(err);
      });
    this.onFault = (entry, error, ctx) => {
      try {
        onFault(entry, error, ctx);
      } catch {
        // Reporting a fault must not turn into another (nor be blamed on the next interceptor out).
      }
    };
    entries.forEach((entry, index) => entry.downstream?.bind((call) => this.runAfter(index, call)));
  }

  /** Whether entry `i` runs for `method`: its `methods` patterns name it and its interceptor acts on it. */
  private appliesTo(i: number, method: MethodInfo): boolean {
    const entry = this.entries[i] as ChainEntry;
    return (this.matchers[i] as (m: MethodInfo) => boolean)(method) && (entry.interceptor.appliesTo?.(method) ?? true);
  }

  private runsFor(method: MethodInfo): boolean {
    return this.entries.some((_, i) => this.appliesTo(i, method));
  }

  /**
   * The message types the entries may decode among `methods`: the requests of the methods some entry runs for,
   * and the responses the table says are read. The observer decodes nothing (it reads the wire), so a chain with
   * no entries decodes nothing.
   */
  typesRead(methods: readonly MethodInfo[]): string[] {
    return methods
      .filter((m) => this.runsFor(m))
      .flatMap((m) => (readsResponse(m) ? [m.requestType, m.responseType] : [m.requestType]))
      .filter((t) => t !== undefined);
  }

  runnerFor(method: MethodInfo): RunChain<C> {
    let runner = this.byPath.get(method.path);
    if (runner) return runner;
    const applicable = this.entries.filter((_, i) => this.appliesTo(i, method));
    const around = this.observer?.around(method);
    // With no interceptor (nor observer) to tell its failures from the proxy's own, whoever runs the chain sorts them out.
    const inner = applicable.length === 0 && around === undefined ? this.bareTerminal : compose(applicable, this.terminal, this.onFault);
    runner = around === undefined ? inner : (ctx) => around(ctx, inner);
    // Unknown paths come from clients; cache only what the table bounds.
    if (method.known) this.byPath.set(method.path, runner);
    return runner;
  }

  /** Runs a call entry `index` makes on a client's behalf through the entries after it that apply, then to its backend. */
  private runAfter(index: number, call: OwnCall): Promise<void> {
    const key = `${index}\0${call.method.path}`;
    let runner = this.ownByPath.get(key);
    if (runner === undefined) {
      const after = this.entries.filter((_, i) => i > index && this.appliesTo(i, call.method));
      runner = compose<OwnCall>(after, (c) => c.forward(), this.onFault);
      // Own calls are of the table's methods only (OwnCall refuses others): the keys are bounded.
      this.ownByPath.set(key, runner);
    }
    return runner(call);
  }
}

function compose<C extends CallContext>(entries: readonly ChainEntry[], terminal: Terminal<C>, onFault: FaultListener): RunChain<C> {
  if (entries.length === 0) return terminal;
  return (ctx) => {
    const dispatch = (index: number): Promise<void> => {
      const entry = entries[index];
      if (!entry) return terminal(ctx);
      return runEntry(entry, ctx, () => dispatch(index + 1), onFault);
    };
    return dispatch(0);
  };
}

async function runEntry(entry: ChainEntry, ctx: CallContext, next: Next, onFault: FaultListener): Promise<void> {
  let nextCalled = false;
  const guardedNext: Next = () => {
    if (nextCalled) {
      return Promise.reject(new ProxyError('CHAIN_MISUSE', `interceptor "${entry.interceptor.name}" called next() more than once`));
    }
    nextCalled = true;
    return next().catch((err: unknown) => {
      if (typeof err === 'object' && err !== null) downstreamErrors.add(err);
      throw err;
    });
  };
  try {
    await entry.interceptor.intercept(ctx, guardedNext);
  } catch (err) {
    // A ProxyError is a decision (deny, unavailable) unless its code says the interceptor failed; anything
    // else is a fault of the interceptor.
    if (isDownstream(err) || (err instanceof ProxyError && !err.isInterceptorFault)) throw err;
    onFault(entry, err, ctx);
    if (entry.onError === 'failClosed') {
      // A coded fault (the audit log cannot be written) keeps its code; anything else is reported generically.
      if (err instanceof ProxyError && err.code !== 'CHAIN_MISUSE') throw err;
      throw new ProxyError('INTERCEPTOR_FAILED', `cri-proxy: interceptor "${entry.interceptor.name}" failed: ${errorMessage(err)}`, {
        cause: err,
      });
    }
    if (!nextCalled) await guardedNext();
  }
}

const BUG_TYPES = [TypeError, RangeError, ReferenceError, SyntaxError, EvalError, URIError];

/**
 * The last step failing with a JavaScript error is a bug of the proxy itself, not of any interceptor, and is
 * reported as such; its own errors (ProxyError, size limits) pass unchanged.
 */
function ownBug(err: unknown): unknown {
  const bug = err instanceof Error && (err.constructor === Error || BUG_TYPES.some((type) => err.constructor === type));
  if (!bug) return err;
  return new ProxyError('PROXY_INTERNAL', `cri-proxy internal error: ${errorMessage(err)}`, { cause: err });
}

function isDownstream(err: unknown): boolean {
  return typeof err === 'object' && err !== null && downstreamErrors.has(err);
}

/** Globs (policies/glob.ts) like `RunPodSandbox`, `runtime.v1.ImageService/*` or `*Status`, matched against name and service/name. */
export function compileMethodFilter(patterns: readonly string[] | undefined): (method: MethodInfo) => boolean {
  if (!patterns || patterns.length === 0) return () => true;
  const matches = globMatcher(patterns);
  return (method) => matches(method.name) || matches(`${method.service}/${method.name}`);
}
