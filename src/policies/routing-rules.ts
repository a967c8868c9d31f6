/**
 * Where a new pod runs: the routing rules compiled once, then decided with no I/O. The first rule whose every
 * criterion matches names the backend; no match means the default backend. The `handlers` map then turns
 * kubelet's RuntimeClass handler into the name that backend knows. Semantics are documented in docs/routing.md.
 */
import { globMatcher } from './glob';
import { fieldAt } from '../messages/field-at';
/** A decoded request as the codec returns it: a plain object with snake_case keys. */
type DecodedMessage = Readonly<Record<string, unknown>>;

export interface RoutingMatch {
  /** RuntimeClass handler names or `*` globs; "" is the pod without a RuntimeClass. */
  readonly runtimeHandlers?: readonly string[] | undefined;
  /** Namespace names or `*` globs. */
  readonly namespaces?: readonly string[] | undefined;
  /** Every key must be present, its value equal to the given one (which may use `*` globs). */
  readonly labels?: Readonly<Record<string, string>> | undefined;
  readonly annotations?: Readonly<Record<string, string>> | undefined;
}

export interface RoutingRule {
  /** Shown in metrics, traces and logs; `rules[i]` when absent. */
  readonly name?: string | undefined;
  readonly backend: string;
  readonly match: RoutingMatch;
}

/** Per backend: kubelet's handler → the handler that backend knows ("" = the backend's default handler). */
export type HandlerMap = Readonly<Record<string, Readonly<Record<string, string>>>>;

export interface RoutingPolicy {
  readonly rules: readonly RoutingRule[];
  readonly handlers: HandlerMap;
  readonly defaultBackend: string;
}

/** What the rules look at, as read from a request. */
export interface PodFacts {
  readonly handler: string;
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
}

export interface Placement {
  readonly backend: string;
  /** The deciding rule's name; undefined when no rule matched and the default backend was taken. */
  readonly rule: string | undefined;
  /** The handler as kubelet sent it. */
  readonly requestedHandler: string;
  /** The handler the backend must receive (differs from `requestedHandler` only through `handlers`). */
  readonly handler: string;
}

export interface CompiledRouting {
  readonly defaultBackend: string;
  readonly place: (facts: PodFacts) => Placement;
  /** RunPodSandbox and RestorePod: `config` (metadata, labels, annotations) and `runtime_handler`. */
  readonly placeSandbox: (request: DecodedMessage | undefined) => Placement;
  /** PullImage: the pod's `sandbox_config` and `image.runtime_handler`, when kubelet sends them. */
  readonly placeImagePull: (request: DecodedMessage | undefined) => Placement;
  /** `handler` as `backend` knows it. */
  readonly translateHandler: (backend: string, handler: string) => string;
  /** The kubelet handler names that reach `backendHandler` on `backend` through `handlers`. */
  readonly kubeletNamesOf: (backend: string, backendHandler: string) => string[];
}

type Test = (facts: PodFacts) => boolean;

function anyOf(patterns: readonly string[], pick: (facts: PodFacts) => string): Test {
  const matches = globMatcher(patterns);
  return (facts) => matches(pick(facts));
}

function allEntries(wanted: Readonly<Record<string, string>>, pick: (facts: PodFacts) => Readonly<Record<string, string>>): Test {
  const entries = Object.entries(wanted).map(([key, value]) => [key, globMatcher([value])] as const);
  return (facts) => {
    const have = pick(facts);
    return entries.every(([key, matches]) => Object.hasOwn(have, key) && matches(have[key] as string));
  };
}

function compileMatch(match: RoutingMatch): Test {
  const tests: Test[] = [];
  if (match.runtimeHandlers !== undefined) tests.push(anyOf(match.runtimeHandlers, (f) => f.handler));
  if (match.namespaces !== undefined) tests.push(anyOf(match.namespaces, (f) => f.namespace));
  if (match.labels !== undefined) tests.push(allEntries(match.labels, (f) => f.labels));
  if (match.annotations !== undefined) tests.push(allEntries(match.annotations, (f) => f.annotations));
  return (facts) => tests.every((test) => test(facts));
}

/** A protobuf map decoded to a plain object; anything else (absent, malformed) reads as empty. */
function stringMap(message: DecodedMessage | undefined, key: string): Readonly<Record<string, string>> {
  const value = message?.[key];
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) if (typeof v === 'string') out[k] = v;
  return out;
}

function subMessage(message: DecodedMessage | undefined, key: string): DecodedMessage | undefined {
  const value = message?.[key];
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as DecodedMessage) : undefined;
}

/** The facts of a pod from its PodSandboxConfig and the handler kubelet asked for. */
function podFacts(sandboxConfig: DecodedMessage | undefined, handler: string | undefined): PodFacts {
  return {
    handler: handler ?? '',
    namespace: fieldAt(sandboxConfig, 'metadata.namespace') ?? '',
    labels: stringMap(sandboxConfig, 'labels'),
    annotations: stringMap(sandboxConfig, 'annotations'),
  };
}

export function compileRouting(policy: RoutingPolicy): CompiledRouting {
  const rules = policy.rules.map((rule, i) => ({
    name: rule.name ?? `rules[${i}]`,
    backend: rule.backend,
    matches: compileMatch(rule.match),
  }));
  const translateHandler = (backend: string, handler: string): string => {
    const map = Object.hasOwn(policy.handlers, backend) ? policy.handlers[backend] : undefined;
    return map !== undefined && Object.hasOwn(map, handler) ? (map[handler] as string) : handler;
  };
  const place = (facts: PodFacts): Placement => {
    const rule = rules.find((r) => r.matches(facts));
    const backend = rule?.backend ?? policy.defaultBackend;
    return { backend, rule: rule?.name, requestedHandler: facts.handler, handler: translateHandler(backend, facts.handler) };
  };
  return {
    defaultBackend: policy.defaultBackend,
    place,
    placeSandbox: (request) => place(podFacts(subMessage(request, 'config'), fieldAt(request, 'runtime_handler'))),
    placeImagePull: (request) => place(podFacts(subMessage(request, 'sandbox_config'), fieldAt(request, 'image.runtime_handler'))),
    translateHandler,
    kubeletNamesOf: (backend, backendHandler) => {
      const map = Object.hasOwn(policy.handlers, backend) ? (policy.handlers[backend] ?? {}) : {};
      return Object.entries(map)
        .filter(([, to]) => to === backendHandler)
        .map(([from]) => from);
    },
  };
}
