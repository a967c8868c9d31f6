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
import { mergedList, toEveryBackend } from './node-wide';
import { OwnershipCache } from './ownership';
import { requestString, rewriteHandler } from '../../messages/request-fields';
import { mergedStatus } from './status-merge';
import { mergeStreams } from './stream-merge';
import { fieldAt } from '../../messages/field-at';

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

const built = (answer: BuiltAnswer): Decision => ({ kind: 'answer', answer: { from: 'proxy', answer } });

export class RoutingDispatcher {
  readonly rules: CompiledRouting;
  readonly ownership: OwnershipCache;
  readonly events: EventsMerger;
  private readonly metrics: RoutingMetrics;
  /** Default first: merged answers list its items first, and its words win. */
  private readonly order: readonly string[];
  private readonly merges = new Map<string, ListMerge>();

  constructor(
    config: RoutingConfig,
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
  }

  /** Rebuilds the ownership cache from every backend; calls naming unknown IDs wait for it. */
  start(): Promise<unknown> {
    return this.ownership.rebuild();
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
        return built(await mergedStatus(fanOut, call.path, call.request, this.rules.kubeletNamesOf));
      case 'merge':
        return built(await mergedList(fanOut, call.method, call.path, call.request, this.mergeOf(call, entry)));
      case 'merge-stream':
        return { kind: 'stream', run: (send) => this.mergeStream(call, entry, send) };
      case 'events':
        return { kind: 'stream', run: (send) => this.pipeEvents(call.signal, send) };
      case 'place':
        return this.place(entry, call, this.rules.placeSandbox(decodeMessage(type, call.request)));
      case 'pull': {
        const request = decodeMessage(type, call.request);
        const owner = this.ownership.podOwner(fieldAt(request, 'sandbox_config.metadata.uid') ?? '');
        return owner !== undefined ? this.forward(entry, call, owner) : this.place(entry, call, this.rules.placeImagePull(request));
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
        return this.forward(entry, call, owner.backend);
      }
    }
  }

  private place(entry: RouteEntry, call: RoutingCall, placement: Placement): Decision {
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
