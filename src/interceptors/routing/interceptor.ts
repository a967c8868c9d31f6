/**
 * The `routing` interceptor: carries out the dispatcher's decision for each call on its call context. A call
 * forwarded goes to the chosen backend (its handler perhaps renamed) and teaches ownership; an answer routing
 * got or built is given instead of forwarding; a merged stream is written by the proxy itself.
 */
import type { InterceptorDeps } from '../../chain/interceptor-types';
import { GrpcStatus, ProxyError, errorMessage } from '../../errors';
import type { Logger } from '../../log';
import { decodeMessage, warmCodec, type DecodedMessage } from '../../messages/codec';
import { fieldAt } from '../../messages/field-at';
import { lookupMethod, methodTable } from '../../chain/method-table';
import type { Downstream } from '../../chain/own-call';
import type { PullOutcome, PullThroughChain } from './image-flow';
import type { CallContext, Interceptor, Next } from '../../chain/types';
import type { RoutingConfig } from './config';
import { RoutingDispatcher, type Decision, type RoutingCall } from './dispatch';
import type { BuiltAnswer, RoutedAnswer } from './fan-out';
import { backendCalls } from './runtime-calls';
import { metadataForBackends } from '../../chain/own-call';
import { EVERY_BACKEND } from '../../chain/backends';

type Forward = Extract<Decision, { kind: 'forward' }>;
type Stream = Extract<Decision, { kind: 'stream' }>;

const PULL_IMAGE = lookupMethod('/runtime.v1.ImageService/PullImage');
const PULL_RESPONSE = 'runtime.v1.PullImageResponse';

class RoutingInterceptor implements Interceptor {
  constructor(
    readonly name: string,
    private readonly dispatcher: RoutingDispatcher,
    private readonly downstream: Downstream,
    private readonly log: Logger,
  ) {}

  async intercept(ctx: CallContext, next: Next): Promise<void> {
    const { method } = ctx;
    if (!method.known && this.dispatcher.routesUnknownMethods) {
      ctx.backend = await this.dispatcher.backendOfUnknown(await ctx.firstRequestMessage());
      return next();
    }
    if (!method.known || this.dispatcher.passesThrough(method.name)) {
      ctx.backend = this.dispatcher.defaultBackend;
      return next();
    }
    const pull: PullThroughChain = (backend, request) => this.pull(ctx, backend, request);
    const request = (await ctx.requestBytes()) ?? Buffer.alloc(0);
    const call: RoutingCall = {
      method: method.name,
      path: method.path,
      requestType: method.requestType,
      responseType: method.responseType,
      request,
      deadline: ctx.deadline,
      // Only calls routing makes itself need these.
      get metadata() {
        return metadataForBackends(ctx);
      },
      get signal() {
        return ctx.signal;
      },
      pull,
    };
    const decision = await this.dispatcher.decide(call);
    switch (decision.kind) {
      case 'forward':
        return this.forward(ctx, next, request, decision);
      case 'answer':
        answer(ctx, decision.answer);
        return;
      case 'stream':
        return stream(ctx, decision);
    }
  }

  /** A pull on the client's behalf, through the entries after routing (the image policy judges it), to `backend`. */
  private async pull(ctx: CallContext, backend: string, request: Buffer): Promise<PullOutcome> {
    const { outcome, body } = await this.downstream.call(ctx, { method: PULL_IMAGE, request, backend });
    let imageRef: string | undefined;
    if (outcome.code === GrpcStatus.OK && body !== undefined) {
      try {
        imageRef = fieldAt(decodeMessage(PULL_RESPONSE, body), 'image_ref');
      } catch {
        // The pull worked; the ID kubelet named is kept.
      }
    }
    // Refused by an interceptor after routing (the image policy), as opposed to failed by the runtime or on the way.
    const refused = outcome.fromProxy && outcome.code === GrpcStatus.PERMISSION_DENIED;
    return { code: outcome.code, message: outcome.message, refused, imageRef };
  }

  warmUp(): Promise<void> {
    // Routing reads, merges and builds answers of any method, and makes calls of its own.
    warmCodec(methodTable.flatMap((m) => [m.requestType, m.responseType]).filter((t) => t !== undefined));
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.dispatcher.close();
    return Promise.resolve();
  }

  private async forward(ctx: CallContext, next: Next, request: Buffer, decision: Forward): Promise<void> {
    ctx.backend = decision.backend;
    if (decision.request !== request) ctx.replaceRequest(decision.request);
    await next();
    const outcome = ctx.outcome;
    if (decision.onSuccess === undefined || outcome?.code !== GrpcStatus.OK || outcome.fromProxy) return;
    let response: DecodedMessage | undefined;
    try {
      response = ctx.response();
    } catch (err) {
      // The object is then found on demand, by asking the backends.
      this.log.warn('routing could not read an answer to learn from', {
        method: ctx.method.name,
        backend: decision.backend,
        error: errorMessage(err),
      });
    }
    decision.onSuccess(response);
  }
}

/** A backend's own answer relayed as it came, or one routing built (under EVERY_BACKEND). */
function answer(ctx: CallContext, routed: RoutedAnswer): void {
  if (routed.from === 'backend') {
    ctx.backend = routed.backend;
    const { body, trailers, code, message } = routed.reply;
    const messages = body === undefined ? [] : [body];
    ctx.respond(trailers.length > 0 ? { messages, trailers } : { messages, code, message });
    return;
  }
  ctx.backend = EVERY_BACKEND;
  ctx.respond(builtAnswer(routed.answer));
}

function builtAnswer(built: BuiltAnswer): { messages?: Buffer[]; code?: number; message?: string } {
  // An empty message is a valid answer of every type (an empty list, say).
  if (built.code === GrpcStatus.OK) return { messages: [built.body ?? Buffer.alloc(0)] };
  return { code: built.code, message: built.message };
}

async function stream(ctx: CallContext, decision: Stream): Promise<void> {
  ctx.backend = EVERY_BACKEND;
  const out = ctx.openResponse();
  const send = async (message: Buffer): Promise<void> => {
    if (!out.write(message)) await out.drained();
    // Ended under it: the client went away (the call's outcome is CANCELLED) or the proxy is stopping.
    if (out.closed)
      throw ctx.signal.aborted ? ctx.signal.reason : new ProxyError('CANCELLED', `cri-proxy: ${ctx.method.name}: the client went away`);
  };
  const end = await decision.run(send);
  out.end(end.code, end.message);
}

export function createRoutingInterceptor(config: RoutingConfig, deps: InterceptorDeps): Interceptor {
  const { router, log, downstream } = deps;
  // Its pulls for kubelet must pass the interceptors after it: never made around them.
  if (downstream === undefined) throw new Error('routing needs the proxy to give it a way to call through the chain (deps.downstream)');
  const { call, stream: streamCall } = backendCalls(router);
  const dispatcher = new RoutingDispatcher(config, {
    backends: [...router.upstreams].map((u) => u.name),
    defaultBackend: router.defaultBackend,
    call,
    stream: streamCall,
    registry: deps.registry,
    log,
  });
  // At once: calls naming an ID the cache does not hold yet wait for it (at most rebuildTimeoutMs).
  dispatcher
    .start()
    .catch((err: unknown) => log.error('ownership rebuild failed; objects are found on demand', { error: errorMessage(err) }));
  return new RoutingInterceptor(deps.name, dispatcher, downstream, log);
}
