/**
 * Routing as one decision per call, with no knowledge of the data plane: given the method and the request's
 * bytes, either a backend to forward the call to (with the request, its handler perhaps renamed), an answer
 * routing built or got from the backends itself, or a stream routing runs. The interceptor only carries out
 * the decision on its call context.
 */
import type { Registry } from 'prom-client';
import { GrpcStatus, errorMessage } from '../../errors';
import type { Logger } from '../../log';
import { compileRouting, type CompiledRouting, type Placement } from '../../policies/routing-rules';
import { decodeMessage, type DecodedMessage } from '../../messages/codec';
import type { CallBackend, MetadataFields, StreamBackend } from './backend-call';
import type { RoutingConfig } from './config';
import { EventsMerger, type Schedule } from './events';
import type { BuiltAnswer, FanOutCall, RoutedAnswer } from './fan-out';
import { imageStatusAcross, removeImageAcross } from './image-lookup';
import { compileListMerge, type ListMerge } from './list-merge';
import { methodRoutes, type RouteEntry } from './method-routes';
import { routingMetrics, type RoutingMetrics } from './metrics';
import { mergedList, toEveryBackend, type AnswerLimit } from './node-wide';
import { OwnershipCache } from './ownership';
import { firstFieldString, requestString, rewriteHandler } from '../../messages/request-fields';
import { mergedStatus } from './status-merge';
import { mergeStreams } from './stream-merge';
import { fieldAt } from '../../messages/field-at';
import { ImageFlow, type PullThroughChain } from './image-flow';
import { PullCredentials } from './pull-credentials';
import { runtimeConfigAnswer, RuntimeConfigWatch } from './runtime-config';

/** What routing needs to know about one call. */
export interface RoutingCall {
  /** MethodInfo.name and .path, e.g. `RunPodSandbox`, `/runtime.v1.RuntimeService/RunPodSandbox`. */
  readonly method: string;
  readonly path: string;
  /** MethodInfo.requestType and .responseType; undefined for methods outside the table. */
  readonly requestType: string | undefined;
  readonly responseType: string | undefined;
  /** The request message as the client sent it (unframed). */
  readonly request: Buffer;
  readonly deadline: number | undefined;
  /** Metadata to send along when routing calls backends itself (the client's, plus what interceptors added). */
  readonly metadata: MetadataFields;
  /** The client's call: aborted when it is cancelled. */
  readonly signal: AbortSignal;
  /** Pulls an image on the client's behalf, through the interceptors after routing (CreateContainer needs it). */
  readonly pull: PullThroughChain;
}

export type Decision =
  | {
      readonly kind: 'forward';
      readonly backend: string;
      /** What to send: the client's request itself unless its handler was renamed. */
      readonly request: Buffer;
      /** The rule that placed a new pod (undefined when the default backend took it). */
      readonly rule?: string | undefined;
      /** To call with the decoded response once the backend answered OK (ownership learns from it). */
      readonly onSuccess?: (response: DecodedMessage | undefined) => void;
    }
  /** Answer the call with this and do not forward it. */
  | { readonly kind: 'answer'; readonly answer: RoutedAnswer }
  /** A server stream routing runs: `send` each message (awaiting it), then end with the status it resolves to. */
  | { readonly kind: 'stream'; readonly run: (send: (message: Buffer) => Promise<void>) => Promise<BuiltAnswer> };

export interface RoutingDeps {
  /** Every configured backend, in config order. */
  readonly backends: readonly string[];
  readonly defaultBackend: string;
  readonly call: CallBackend;
  readonly stream: StreamBackend;
  readonly registry: Registry;
  readonly log: Logger;
  readonly schedule?: Schedule;
  readonly now?: () => number;
}

/** Longer strings are no IDs of a runtime: not worth a cache lookup. */
const MAX_ID_LENGTH = 256;

const built = (answer: BuiltAnswer): Decision => ({ kind: 'answer', answer: { from: 'proxy', answer } });

export class RoutingDispatcher {
  readonly rules: CompiledRouting;
  readonly ownership: OwnershipCache;
  readonly events: EventsMerger;
  private readonly metrics: RoutingMetrics;
  /** Default first: merged answers list its items first, and its words win. */
  private readonly order: readonly string[];
  private readonly merges = new Map<string, ListMerge>();
  private readonly credentials: PullCredentials;
  private readonly images: ImageFlow;
  private readonly limit: AnswerLimit;
  private readonly configs: RuntimeConfigWatch;

  constructor(
    private readonly config: RoutingConfig,
    private readonly deps: RoutingDeps,
  ) {
    this.order = [deps.defaultBackend, ...deps.backends.filter((b) => b !== deps.defaultBackend)];
    this.metrics = routingMetrics(deps.registry);
    this.rules = compileRouting({ rules: config.rules, handlers: config.handlers, defaultBackend: deps.defaultBackend });
    const { ownership, events } = config;
    this.ownership = new OwnershipCache({
      backends: this.order,
      defaultBackend: deps.defaultBackend,
      call: deps.call,
      ...ownership,
      metrics: this.metrics,
      log: deps.log,
      ...(deps.now !== undefined ? { now: deps.now } : {}),
    });
    this.events = new EventsMerger({
      backends: this.order,
      stream: deps.stream,
      ...events,
      metrics: this.metrics,
      log: deps.log,
      ...(deps.schedule !== undefined ? { schedule: deps.schedule } : {}),
      observe: (backend, message) => this.ownership.learnFromEvent(backend, message),
    });
    this.credentials = new PullCredentials(config.images.credentialCacheSize);
    this.images = new ImageFlow({
      backends: this.order,
      call: deps.call,
      pullOnCreate: config.images.pullOnCreate,
      credentials: this.credentials,
      metrics: this.metrics,
      log: deps.log,
    });
    this.limit = { bytes: config.maxMergedAnswerBytes, exceeded: (method) => this.metrics.mergedTooLarge.inc({ method }) };
    this.configs = new RuntimeConfigWatch(this.metrics, deps.log);
  }

  /**
   * Rebuilds the ownership cache from every backend (calls naming unknown IDs wait for it), and compares their
   * RuntimeConfig answers, saying so when they differ.
   */
  start(): Promise<unknown> {
    const deadline = (this.deps.now ?? Date.now)() + this.config.ownership.rebuildTimeoutMs;
    const configs = this.configs
      .check({ call: this.deps.call, backends: this.order, metadata: [], deadline })
      .catch((err: unknown) => this.deps.log.warn("could not compare the backends' RuntimeConfig", { error: errorMessage(err) }));
    return Promise.all([this.ownership.rebuild(), configs]);
  }

  close(): void {
    this.events.close();
  }

  get defaultBackend(): string {
    return this.deps.defaultBackend;
  }

  /** True when calls of `method` go to the default backend as they are: nothing to read, rewrite or learn. */
  passesThrough(method: string): boolean {
    const entry = Object.hasOwn(methodRoutes, method) ? methodRoutes[method] : undefined;
    return entry === undefined || (entry.route.kind === 'default' && entry.handlerField === undefined && entry.ownership === undefined);
  }

  /** What to do with one call. Rejects only with a ProxyError (a request that does not decode). */
  async decide(call: RoutingCall): Promise<Decision> {
    const entry = Object.hasOwn(methodRoutes, call.method) ? methodRoutes[call.method] : undefined;
    const type = call.requestType;
    if (entry === undefined || type === undefined) return { kind: 'forward', backend: this.deps.defaultBackend, request: call.request };
    const fanOut: FanOutCall = { call: this.deps.call, backends: this.order, metadata: call.metadata, deadline: call.deadline };
    const { route } = entry;
    switch (route.kind) {
      case 'default':
        return this.forward(entry, call, this.deps.defaultBackend);
      case 'all':
        return { kind: 'answer', answer: await toEveryBackend(fanOut, call.method, call.path, call.request) };
      case 'status':
        return built(
          await mergedStatus(fanOut, call.path, call.request, this.rules.kubeletNamesOf, (c) => this.configs.note(c), this.limit),
        );
      case 'runtime-config': {
        return { kind: 'answer', answer: runtimeConfigAnswer(await this.configs.check(fanOut)) };
      }
      case 'merge':
        return built(await mergedList(fanOut, call.method, call.path, call.request, this.mergeOf(call, entry), this.limit));
      case 'merge-stream':
        return { kind: 'stream', run: (send) => this.mergeStream(call, entry, send) };
      case 'events':
        return { kind: 'stream', run: (send) => this.pipeEvents(call.signal, send) };
      case 'place':
        return this.place(entry, call, this.rules.placeSandbox(decodeMessage(type, call.request)));
      case 'pull': {
        const request = decodeMessage(type, call.request);
        const owner = this.ownership.podOwner(fieldAt(request, 'sandbox_config.metadata.uid') ?? '');
        const decision =
          owner !== undefined ? this.forward(entry, call, owner) : this.place(entry, call, this.rules.placeImagePull(request));
        // Credentials that worked are the ones to pull the image with onto another runtime later.
        const image = fieldAt(request, 'image.image') ?? '';
        return { ...decision, onSuccess: () => this.credentials.learn(image, call.request) };
      }
      case 'image-status':
      case 'image-remove': {
        if (entry.handlerField !== undefined && requestString(call.request, type, entry.handlerField) !== '') {
          return this.forward(entry, call, this.rules.placeImagePull(decodeMessage(type, call.request)).backend);
        }
        const across = route.kind === 'image-status' ? imageStatusAcross : removeImageAcross;
        return { kind: 'answer', answer: await across(fanOut, call.request) };
      }
      case 'sandbox':
      case 'container': {
        const owner = await this.ownership.owner(route.kind, requestString(call.request, type, route.field), call.deadline);
        if (owner.kind === 'unavailable') return built(owner.answer);
        const decision = this.forward(entry, call, owner.backend);
        // With one backend, an image any runtime has is on the pod's: kubelet's own flow holds.
        if (entry.ensuresImage !== true || owner.kind !== 'owned' || this.order.length === 1) return decision;
        const image = await this.images.beforeCreate({
          request: decision.request,
          owner: owner.backend,
          metadata: call.metadata,
          deadline: call.deadline,
          pull: call.pull,
        });
        return image.kind === 'failed' ? built(image.answer) : { ...decision, request: image.request };
      }
    }
  }

  /** Whether methods outside the table may go elsewhere than the default backend (there is another). */
  get routesUnknownMethods(): boolean {
    return this.order.length > 1;
  }

  /**
   * A method outside the table: to the backend that owns the sandbox or container its first field names (field
   * number 1, a string, as in every scoped CRI method), when the ownership cache holds that ID; else the default
   * backend. Never asks the backends: the field may be no ID at all.
   */
  async backendOfUnknown(firstMessage: Buffer | undefined): Promise<string> {
    const id = firstFieldString(firstMessage, MAX_ID_LENGTH);
    const owner = id === undefined ? undefined : await this.ownership.cachedOwner(id);
    return owner ?? this.deps.defaultBackend;
  }

  private place(entry: RouteEntry, call: RoutingCall, placement: Placement): Decision & { kind: 'forward' } {
    this.metrics.placements.inc({ backend: placement.backend, rule: placement.rule ?? 'default' });
    return { ...this.forward(entry, call, placement.backend), rule: placement.rule };
  }

  /** To `backend`, the handler renamed for it, ownership updated once it answered. */
  private forward(entry: RouteEntry, call: RoutingCall, backend: string): Decision & { kind: 'forward' } {
    const type = call.requestType ?? '';
    const request =
      entry.handlerField === undefined
        ? call.request
        : rewriteHandler(call.request, type, entry.handlerField, (h) => this.rules.translateHandler(backend, h));
    const effect = entry.ownership;
    if (effect === undefined) return { kind: 'forward', backend, request };
    return {
      kind: 'forward',
      backend,
      request,
      onSuccess: (response) => {
        try {
          this.ownership.apply(effect, backend, decodeMessage(type, call.request), response);
        } catch (err) {
          this.deps.log.warn('routing could not learn from an answer', { method: call.method, backend, error: errorMessage(err) });
        }
      },
    };
  }

  private mergeOf(call: RoutingCall, entry: RouteEntry): ListMerge {
    let merge = this.merges.get(call.method);
    if (merge === undefined) {
      if (!('lists' in entry.route) || call.responseType === undefined) throw new Error(`${call.method} is not a merged method`);
      merge = compileListMerge(call.responseType, entry.route.lists);
      this.merges.set(call.method, merge);
    }
    return merge;
  }

  private mergeStream(call: RoutingCall, entry: RouteEntry, send: (message: Buffer) => Promise<void>): Promise<BuiltAnswer> {
    return mergeStreams({
      stream: this.deps.stream,
      backends: this.order,
      method: call.method,
      path: call.path,
      request: call.request,
      metadata: call.metadata,
      deadline: call.deadline,
      signal: call.signal,
      merge: this.mergeOf(call, entry),
      send,
    });
  }

  /** One subscriber of the merged events until the client leaves or the subscription ends. */
  private async pipeEvents(signal: AbortSignal, send: (message: Buffer) => Promise<void>): Promise<BuiltAnswer> {
    const subscription = this.events.subscribe();
    const onAbort = (): void => subscription.close();
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) subscription.close();
    try {
      for await (const message of subscription) await send(message);
    } catch (err) {
      subscription.close();
      return {
        code: GrpcStatus.CANCELLED,
        message: `cri-proxy: GetContainerEvents: sending to the client failed: ${errorMessage(err)}`,
        body: undefined,
      };
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
    return subscription.ended ?? { code: GrpcStatus.OK, message: '', body: undefined };
  }
}
