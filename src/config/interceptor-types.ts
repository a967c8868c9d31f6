import type { TracerProvider } from '@opentelemetry/api';
import type { Registry } from 'prom-client';
import type { z } from 'zod';
import type { Logger } from '../log';
import type { Router } from '../proxy/router';
import type { Interceptor } from '../proxy/types';

/** What the proxy hands an interceptor factory besides the instance's own config. */
export interface InterceptorDeps {
  /** The instance name from the config (`interceptors[].name`); use it as `Interceptor.name`. */
  readonly name: string;
  readonly log: Logger;
  /** Metrics go here, never into prom-client's global registry. */
  readonly registry: Registry;
  /** The backends, for calls an interceptor makes on its own (image lookups, say). */
  readonly router: Router;
  /** Overrides the provider a tracing interceptor would build from its own config (tests inject one). */
  readonly tracerProvider?: TracerProvider;
}

/** A kind of interceptor that config entries can name in `type`. */
export interface InterceptorType<S extends z.ZodType = z.ZodType> {
  /** Validates the entry's `config`; its issues are reported under `interceptors[i].config`. */
  readonly schema: S;
  /** Keys of `config` that hold file paths: relative ones are resolved against the config file's folder. */
  readonly pathKeys?: readonly string[];
  /**
   * Checks the validated config against the names in `backends` (a rule naming a backend that does not exist,
   * say); each issue's path is relative to the entry's `config`.
   */
  readonly checkBackends?: (
    config: z.output<S>,
    backends: readonly string[],
  ) => readonly { readonly path: readonly (string | number)[]; readonly message: string }[];
  /**
   * Chain order: entries of these types (keys) must come after this type's, for the reason given (e.g. they act
   * on the backend this one picks). A config that has them before is rejected.
   */
  readonly runsBefore?: Readonly<Record<string, string>>;
  /** The type must see every call: an entry of it may not narrow `methods`. */
  readonly everyMethod?: boolean;
  /** Builds one instance from the validated (and deep-frozen) output of `schema`. */
  create(config: z.output<S>, deps: InterceptorDeps): Interceptor;
}

const TYPE_NAME = /^[a-z][a-z0-9-]*$/;
const registry = new Map<string, InterceptorType>();

/** Registers a type; called once per type at module load, so a clash is a programming error. */
export function registerInterceptorType<S extends z.ZodType>(type: string, def: InterceptorType<S>): void {
  if (!TYPE_NAME.test(type)) throw new Error(`interceptor type name "${type}" must be lowercase kebab-case`);
  if (registry.has(type)) throw new Error(`interceptor type "${type}" is already registered`);
  registry.set(type, def);
}

export function interceptorType(type: string): InterceptorType | undefined {
  return registry.get(type);
}

/** Registered type names, sorted (for error messages and `--help`). */
export function interceptorTypeNames(): string[] {
  return [...registry.keys()].sort();
}
