import { GrpcStatus, ProxyError, errorMessage } from '../errors';
import type { Logger } from '../log';
import { outcomeOfError } from './call-outcome';
import { decodeMessage, type DecodedMessage } from '../messages/codec';
import { MessageTooLargeError, frameMessage, unframeSingle } from './grpc-frames';
import { parseGrpcTimeout, readStatusFields } from './grpc-status';
import { Metadata, OutgoingMetadata } from '../chain/metadata';
import { readsResponse } from '../chain/method-table';
import { tooLarge } from './relay-messages';
import { upstreamFields } from './request-headers';
import type { Router } from './router';
import type { CallTransport, ForwardRequest } from './transport';
import type { CallContext, CallOutcome, MethodInfo, OwnAnswer, ResponseStream, StreamMessage } from '../chain/types';

export interface CallEnvironment {
  readonly maxMessageBytes: number;
  readonly log: Logger;
  readonly router: Router;
}

/**
 * One CRI call in flight: the context interceptors see, built on a transport port that knows nothing of the
 * chain. Nothing is decoded or read ahead unless an interceptor asks for it.
 */
export class Call implements CallContext {
  readonly startedAt = process.hrtime.bigint();
  private readonly arrivedAt = Date.now();
  backend: string | undefined = undefined;
  upstreamNanos = 0n;
  outcome: CallOutcome | undefined = undefined;
  private stateMap: Map<unknown, unknown> | undefined;
  private extra: OutgoingMetadata | undefined;
  private abortController: AbortController | undefined;
  private metadataView: Metadata | undefined;
  private message: Promise<Buffer> | undefined;
  private first: Promise<Buffer | undefined> | undefined;
  private decodedRequest: Promise<DecodedMessage | undefined> | undefined;
  /** The chain tried to read the request and it does not decode. */
  private unreadable: ProxyError | undefined;
  private observers: ((message: StreamMessage) => void)[] | undefined;
  /** The one message of an answer the proxy gave itself. */
  private answered: Buffer | undefined;
  /** The response once decoded: every interceptor that reads it shares one decode. */
  private decodedResponse: DecodedMessage | undefined;
  private finished = false;

  constructor(
    private readonly transport: CallTransport,
    readonly method: MethodInfo,
    private readonly env: CallEnvironment,
  ) {}

  get log(): Logger {
    return this.env.log;
  }

  get metadata(): Metadata {
    return (this.metadataView ??= new Metadata(this.transport.fields));
  }

  get state(): Map<unknown, unknown> {
    return (this.stateMap ??= new Map());
  }

  get upstreamMetadata(): OutgoingMetadata {
    return (this.extra ??= new OutgoingMetadata());
  }

  get signal(): AbortSignal {
    if (!this.abortController) {
      // Made on first use: most calls never ask, and nothing needs telling when they are cancelled.
      const controller = (this.abortController = new AbortController());
      const cancel = (): void => controller.abort(new ProxyError('CANCELLED', 'the client cancelled the call'));
      if (this.transport.cancelled) cancel();
      else this.transport.onCancel(cancel);
    }
    return this.abortController.signal;
  }

  get deadline(): number | undefined {
    const timeout = parseGrpcTimeout(this.metadata.get('grpc-timeout'));
    return timeout === undefined ? undefined : this.arrivedAt + timeout;
  }

  requestBytes(): Promise<Buffer | undefined> {
    return this.readRequestBytes().catch(this.markUnreadable);
  }

  request(): Promise<DecodedMessage | undefined> {
    return this.decodeRequest().catch(this.markUnreadable);
  }

  /**
   * The request message for an observer outside the chain (the pod-start feed): read once, shared with the chain,
   * never decoded; a request that cannot be read is undefined here and stays the runtime's business, not refused
   * for the observer's sake.
   */
  observeRequestBytes(): Promise<Buffer | undefined> {
    return this.readRequestBytes().catch(() => undefined);
  }

  /** The chain needed the request and could not read it: a mutating call is then refused (see forward). */
  private readonly markUnreadable = (err: unknown): never => {
    throw (this.unreadable = toProxyError(err));
  };

  private readRequestBytes(): Promise<Buffer | undefined> {
    if (this.method.requestType === undefined) return Promise.resolve(undefined);
    return (this.message ??= this.transport.readRequest().then((body) => {
      const message = unframeSingle(body);
      if (message === undefined) {
        throw new ProxyError('MALFORMED_REQUEST', `${this.method.name}: the request is not one uncompressed gRPC message`);
      }
      return message;
    }));
  }

  firstRequestMessage(): Promise<Buffer | undefined> {
    if (this.method.requestType !== undefined) return this.requestBytes();
    return (this.first ??= this.transport.readFirstMessage());
  }

  private decodeRequest(): Promise<DecodedMessage | undefined> {
    const type = this.method.requestType;
    if (type === undefined) return Promise.resolve(undefined);
    return (this.decodedRequest ??= this.readRequestBytes().then((message) => decodeMessage(type, message ?? Buffer.alloc(0))));
  }

  responseBytes(): Buffer | undefined {
    if (this.method.responseType === undefined || this.outcome?.code !== GrpcStatus.OK || !readsResponse(this.method)) return undefined;
    // An answer the proxy gave itself (a runtime's relayed by routing, say) is the response the client got.
    if (this.outcome.fromProxy) return this.answered;
    const body = this.transport.responseBody();
    return body === undefined ? undefined : unframeSingle(body);
  }

  response(): DecodedMessage | undefined {
    if (this.decodedResponse !== undefined) return this.decodedResponse;
    const type = this.method.responseType;
    const message = this.responseBytes();
    return type === undefined || message === undefined ? undefined : (this.decodedResponse = decodeMessage(type, message));
  }

  onResponseMessage(observer: (message: StreamMessage) => void): void {
    (this.observers ??= []).push(observer);
  }

  respond(answer: OwnAnswer): void {
    this.claim();
    this.transport.respond(answer);
    this.answered = answer.messages?.length === 1 ? answer.messages[0] : undefined;
    const status = answer.trailers === undefined ? undefined : readStatusFields(answer.trailers);
    this.outcome = {
      code: status?.code ?? answer.code ?? GrpcStatus.OK,
      message: status?.message ?? answer.message ?? '',
      fromProxy: true,
    };
  }

  replaceRequest(message: Buffer): void {
    if (this.message === undefined) throw new ProxyError('CHAIN_MISUSE', 'replaceRequest() before requestBytes()');
    this.transport.replaceRequest(frameMessage(message));
  }

  openResponse(): ResponseStream {
    this.claim();
    return this.transport.openResponse((outcome) => (this.outcome = outcome));
  }

  /** Ends the call early with `error` (shutdown ending a watch): the signal aborts, the stream is cut short. */
  interrupt(error: ProxyError): void {
    if (this.finished) return;
    if (!this.abortController?.signal.aborted) (this.abortController ??= new AbortController()).abort(error);
    this.transport.interrupt(outcomeOfError(error));
  }

  /** The last step of every chain: send the call to the runtime the router picks and relay its answer. */
  forward(): Promise<void> {
    let request: ForwardRequest;
    try {
      request = this.forwardRequest();
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    // Not an async function: one that awaits keeps its whole frame alive for the length of the call.
    const sentAt = process.hrtime.bigint();
    return this.transport.forward(request).then((outcome) => {
      this.upstreamNanos = process.hrtime.bigint() - sentAt;
      this.outcome = outcome;
    });
  }

  private forwardRequest(): ForwardRequest {
    this.claim();
    // A mutating call the chain could not read is refused, never passed on for the runtime to half-apply.
    if (this.unreadable !== undefined && this.method.mutating) throw this.unreadable;
    const upstream = this.env.router.pick(this.backend);
    this.backend = upstream.name;
    const method = this.method;
    return {
      upstream,
      headers: upstreamFields(this.transport.fields, { extra: this.extra, remainingMs: this.remainingMs() }),
      holdResponse: method.kind === 'unary',
      wholeRequest: method.kind !== 'unknown',
      keepResponse: readsResponse(method),
      maxMessageBytes: this.env.maxMessageBytes,
      observers: this.observers,
      responseType: method.responseType,
    };
  }

  /** Sends the call's final status once the chain has run; `error` overrides the runtime's. */
  finish(error?: unknown): void {
    if (this.finished) return;
    this.finished = true;
    if (error !== undefined) this.outcome = outcomeOfError(toProxyError(error));
    else
      this.outcome ??= outcomeOfError(new ProxyError('CHAIN_MISUSE', 'cri-proxy: the interceptor chain ended without forwarding the call'));
    this.logOutcome(this.outcome);
    this.transport.finish(this.outcome);
  }

  private claim(): void {
    if (this.outcome !== undefined) throw new ProxyError('CHAIN_MISUSE', 'the call was already forwarded or answered');
  }

  /** The deadline left for the runtime, when time spent in the proxy (over 1 ms) must come off it. */
  private remainingMs(): number | undefined {
    if (process.hrtime.bigint() - this.startedAt < 1_000_000n) return undefined;
    const deadline = this.deadline;
    if (deadline === undefined) return undefined;
    const remaining = deadline - Date.now();
    if (remaining <= 0) throw new ProxyError('DEADLINE_EXCEEDED', 'the deadline expired before the call reached the runtime');
    return remaining;
  }

  private logOutcome(outcome: CallOutcome): void {
    const level = outcome.fromProxy && outcome.code !== GrpcStatus.OK ? 'warn' : this.method.polling ? 'debug' : 'info';
    const log = this.env.log;
    if (!log.enabled(level)) return;
    log[level]('call', {
      method: this.method.path,
      code: outcome.code,
      ...(outcome.code === GrpcStatus.OK ? {} : { message: outcome.message }),
      ...(outcome.errorCode === undefined ? {} : { errorCode: outcome.errorCode }),
      fromProxy: outcome.fromProxy,
      backend: this.backend,
      durationMs: Number(process.hrtime.bigint() - this.startedAt) / 1e6,
    });
  }
}

export function toProxyError(err: unknown, direction: 'request' | 'response' = 'request'): ProxyError {
  if (err instanceof ProxyError) return err;
  if (err instanceof MessageTooLargeError) return tooLarge(err, direction);
  // Whatever else reaches here is a defect of the proxy itself, not an interceptor's (those the chain wraps).
  return new ProxyError('PROXY_INTERNAL', `cri-proxy: internal error: ${errorMessage(err)}`, { cause: err });
}
