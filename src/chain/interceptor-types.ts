import type { TracerProvider } from '@opentelemetry/api';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import type { Logger } from '../log';
import type { Backends } from './backends';
import type { Downstream } from './own-call';
import type { PodStartSubscriptions } from './pod-start-records';
import type { Interceptor } from './types';

/** What the proxy hands an interceptor factory besides the instance's own config. */
export interface InterceptorDeps {
  /** The instance name from the config (`interceptors[].name`); use it as `Interceptor.name`. */
  readonly name: string;
  readonly log: Logger;
  /** Metrics go here, never into prom-client's global registry. */
  readonly registry: Registry;
  /** The backends, for calls an interceptor makes on its own (image lookups, say). */
  readonly router: Backends;
  /**
   * Calls on a client's behalf through the entries after this one (routing's image pulls): the proxy gives it to
   * every entry and binds it once the chain is built; types that make such calls require it.
   */
  readonly downstream?: Downstream;
  /** Overrides the provider a tracing interceptor would build from its own config (tests inject one). */
  readonly tracerProvider?: TracerProvider;
  /** Finished pod starts, as the proxy follows them for every interceptor at once; none when nothing feeds them. */
  readonly podStarts?: PodStartSubscriptions;
}

/** A kind of interceptor that config entries can name in `type`. */
export interface InterceptorType<S extends z.ZodType = z.ZodType> {
  /** What config entries write in `type`: lowercase kebab-case, unique among the types given to the proxy. */
  readonly name: string;
  /** Validates the entry's `config`; its issues are reported under `interceptors[i].config`. */
  readonly schema: S;
  /**
   * Dotted key paths of `config` that hold file paths (`*` for every key of a map or item of a list, as in
   * `registries.*.caFile`): relative ones are resolved against the config file's folder.
   */
  readonly pathKeys?: readonly string[];
  /**
   * Checks the entry's `config` against the names in `backends` (a rule naming a backend that does not exist,
   * say); each issue's path is relative to the entry's `config`. It is given the config as written, whether or
   * not it validated, so that these problems are reported together with every other: read it defensively.
   */
  readonly checkBackends?: (
    config: unknown,
    backends: readonly string[],
  ) => readonly { readonly path: readonly (string | number)[]; readonly message: string }[];
  /**
   * Dotted key paths of `config` whose values are secrets (`*` stands for every key of a map, as in
   * `exporter.headers.*`): `config print` masks them.
   */
  readonly secretKeys?: readonly string[];
  /**
   * Chain order: entries of these types (keys) must come after this type's, for the reason given (e.g. they act
   * on the backend this one picks). A config that has them before is rejected.
   */
  readonly runsBefore?: Readonly<Record<string, string>>;
  /** The type must see every call: an entry of it may not narrow `methods`. */
  readonly everyMethod?: boolean;
  /**
   * Methods an entry of this type must keep when it narrows `methods` (the image policy's doors, say): a `methods`
   * list that leaves one out is rejected.
   */
  readonly keepsMethods?: readonly string[];
  /**
   * The type ends some calls itself instead of passing them on (answers or refuses them): what it ends. Entries of
   * types that observe every call (`observesEveryCall`) must come before it.
   */
  readonly endsCalls?: string;
  /**
   * The type must see every call, those a later entry ends included: what it would miss after one that ends calls
   * (`endsCalls`). A config that places it after such an entry is rejected.
   */
  readonly observesEveryCall?: string;
  /**
   * Old names of `config` keys, still read (the schema keeps them in its output): key → what to write instead. Their
   * use is reported by `config validate`, logged at start and shown in `cri_proxy_deprecated_settings`.
   */
  readonly deprecatedKeys?: Readonly<Record<string, string>>;
  /** Builds one instance from the validated (and deep-frozen) output of `schema`. */
  create(config: z.output<S>, deps: InterceptorDeps): Interceptor;
}

/** Ties a type's `create` to its schema's output; the result goes into a list of types. */
export function defineInterceptorType<S extends z.ZodType>(type: InterceptorType<S>): InterceptorType {
  return type;
}

const TYPE_NAME = /^[a-z][a-z0-9-]*$/;

/**
 * The interceptor types a proxy knows, given as an explicit list (no registration by import side effect) and
 * checked once here: a bad list is a programming error and fails at startup, before any config is read.
 */
export class InterceptorTypes {
  private readonly byName = new Map<string, InterceptorType>();

  constructor(types: readonly InterceptorType[]) {
    for (const type of types) {
      const name: unknown = type.name;
      if (typeof name !== 'string' || !TYPE_NAME.test(name)) {
        throw new Error(`interceptor type name "${String(name)}" must be lowercase kebab-case`);
      }
      if (this.byName.has(name)) throw new Error(`interceptor type "${name}" is given twice`);
      if (!(type.schema instanceof z.ZodType)) throw new Error(`interceptor type "${name}" has no config schema`);
      if (typeof type.create !== 'function') throw new Error(`interceptor type "${name}" has no create()`);
      this.byName.set(name, type);
    }
  }

  get(name: string): InterceptorType | undefined {
    return this.byName.get(name);
  }

  /** Type names, sorted (for error messages and `--help`). */
  names(): string[] {
    return [...this.byName.keys()].sort();
  }
}
