/**
 * Calls an interceptor makes itself on a client's behalf (routing pulling an image onto the runtime that runs a
 * pod), run through the entries after it in the chain and then to a runtime, exactly as a client's call of that
 * method would be: an image policy after routing judges a pull routing makes as it judges one kubelet makes.
 * Each own call is reported on the client's call (`ownCallsOf`), so an audit log before its maker records it.
 */
import { GrpcStatus, ProxyError, errorMessage } from '../errors';
import type { Logger } from '../log';
import { decodeMessage, type DecodedMessage } from '../messages/codec';
import { ownCallTimeoutMs, type Backends } from './backends';
import { Metadata, OutgoingMetadata } from './metadata';
import { readsResponse } from './method-table';
import type { CallContext, CallOutcome, MethodInfo, OnBehalfOf, OwnAnswer, ResponseStream, StreamMessage } from './types';

/** Headers of a client's call that describe its transport, not its metadata: each own call sets its own. */
const TRANSPORT_HEADERS = new Set(['content-type', 'te', 'grpc-timeout', 'grpc-encoding', 'grpc-accept-encoding', 'user-agent']);

/** What calls made for this client call send: the client's metadata, with what interceptors set on it (a `traceparent`). */
export function metadataForBackends(ctx: CallContext): string[] {
  const fields: string[] = [];
  for (const [name, value] of ctx.metadata.entries()) if (!TRANSPORT_HEADERS.has(name)) fields.push(name, value);
  return ctx.upstreamMetadata.size === 0 ? fields : ctx.upstreamMetadata.applyTo(fields);
}

/** A unary call to make on a client's behalf. */
export interface OwnCallSpec {
  /** A unary method of the table. */
  readonly method: MethodInfo;
  /** The request message (unframed). */
  readonly request: Buffer;
  /** The backend it goes to, unless an entry after the maker names another. */
  readonly backend: string;
}

export interface OwnCallResult {
  /** OK with the runtime's answer, the runtime's error, or the refusal of an entry after the maker. */
  readonly outcome: CallOutcome;
  /** The response message (unframed), when there was one. */
  readonly body: Buffer | undefined;
  /** The backend the call went to. */
  readonly backend: string | undefined;
}

const ownCallsKey = Symbol.for('cri-proxy.chain.own-calls');

/** The calls interceptors made on `ctx`'s behalf so far, in the order they were made. */
export function ownCallsOf(ctx: CallContext): readonly CallContext[] {
  const calls = ctx.state.get(ownCallsKey);
  return Array.isArray(calls) ? (calls as CallContext[]) : [];
}

function outcomeOf(error: unknown): CallOutcome {
  const proxyError =
    error instanceof ProxyError ? error : new ProxyError('PROXY_INTERNAL', `cri-proxy internal error: ${errorMessage(error)}`);
  return { code: proxyError.grpcStatus, message: proxyError.message, fromProxy: true, errorCode: proxyError.code };
}

/** One own call: the context the entries after its maker see, ending in a unary call to a backend. */
export class OwnCall implements CallContext {
  readonly startedAt = process.hrtime.bigint();
  readonly metadata: Metadata;
  readonly upstreamMetadata = new OutgoingMetadata();
  readonly state = new Map<unknown, unknown>();
  readonly method: MethodInfo;
  readonly onBehalfOf: OnBehalfOf;
  backend: string | undefined;
  outcome: CallOutcome | undefined = undefined;
  upstreamNanos = 0n;
  /** The metadata sent, as `metadata` reads it (names and values alternating). */
  private readonly fields: readonly string[];
  private sent: Buffer;
  private body: Buffer | undefined;
  private decodedRequest: Promise<DecodedMessage | undefined> | undefined;
  private decodedResponse: DecodedMessage | undefined;
  private observers: ((message: StreamMessage) => void)[] | undefined;

  constructor(
    private readonly parent: CallContext,
    private readonly spec: OwnCallSpec,
    by: string,
    private readonly backends: Backends,
  ) {
    if (spec.method.kind !== 'unary' || spec.method.requestType === undefined) {
      throw new ProxyError('CHAIN_MISUSE', `interceptor "${by}" made a ${spec.method.name} call of its own; only unary methods can be`);
    }
    this.method = spec.method;
    this.backend = spec.backend;
    this.sent = spec.request;
    this.fields = metadataForBackends(parent);
    this.metadata = new Metadata(this.fields);
    this.onBehalfOf = { call: parent, by };
  }

  get log(): Logger {
    return this.parent.log;
  }

  get deadline(): number | undefined {
    return this.parent.deadline;
  }

  get signal(): AbortSignal {
    return this.parent.signal;
  }

  /** What the call ended with: set once the chain has run (see Downstream). */
  get result(): OwnCallResult {
    const outcome = this.outcome ?? outcomeOf(new ProxyError('CHAIN_MISUSE', 'cri-proxy: an own call ended without an outcome'));
    return { outcome, body: outcome.code === GrpcStatus.OK ? this.body : undefined, backend: this.backend };
  }

  request(): Promise<DecodedMessage | undefined> {
    const type = this.method.requestType as string;
    this.decodedRequest ??= new Promise((resolve) => resolve(decodeMessage(type, this.spec.request)));
    return this.decodedRequest;
  }

  requestBytes(): Promise<Buffer | undefined> {
    return Promise.resolve(this.spec.request);
  }

  firstRequestMessage(): Promise<Buffer | undefined> {
    return this.requestBytes();
  }

  responseBytes(): Buffer | undefined {
    const type = this.method.responseType;
    if (type === undefined || this.outcome?.code !== GrpcStatus.OK || !readsResponse(this.method)) return undefined;
    return this.body;
  }

  response(): DecodedMessage | undefined {
    const type = this.method.responseType;
    const message = this.responseBytes();
    if (type === undefined || message === undefined) return undefined;
    return (this.decodedResponse ??= decodeMessage(type, message));
  }

  respond(answer: OwnAnswer): void {
    this.claim();
    this.body = answer.messages?.length === 1 ? answer.messages[0] : undefined;
    const trailer = (name: string): string | undefined => {
      const fields = answer.trailers ?? [];
      for (let i = 0; i < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
      return undefined;
    };
    // A runtime's answer relayed with its trailers carries its status there.
    const status = trailer('grpc-status');
    const code = status === undefined ? (answer.code ?? GrpcStatus.OK) : Number(status);
    this.outcome = { code, message: trailer('grpc-message') ?? answer.message ?? '', fromProxy: true };
  }

  replaceRequest(message: Buffer): void {
    this.sent = message;
  }

  openResponse(): ResponseStream {
    throw new ProxyError('CHAIN_MISUSE', `${this.method.name} made on a client's behalf is unary: it has no response stream`);
  }

  onResponseMessage(observer: (message: StreamMessage) => void): void {
    (this.observers ??= []).push(observer);
  }

  /** The last step of the chain: the call to the backend. */
  async forward(): Promise<void> {
    this.claim();
    const upstream = this.backends.pick(this.backend);
    this.backend = upstream.name;
    const timeoutMs = ownCallTimeoutMs(this.deadline);
    if (timeoutMs <= 0) throw new ProxyError('DEADLINE_EXCEEDED', 'the deadline expired before the call reached the runtime');
    const sentAt = process.hrtime.bigint();
    try {
      const reply = await upstream.call(this.method.path, this.sent, {
        timeoutMs,
        metadata: this.upstreamMetadata.applyTo(this.fields),
      });
      this.body = reply.body;
      this.outcome = { code: reply.code, message: reply.message, fromProxy: false };
    } catch (err) {
      this.outcome = outcomeOf(err instanceof ProxyError ? err : upstream.unavailable(err));
    } finally {
      this.upstreamNanos = process.hrtime.bigint() - sentAt;
    }
    const body = this.body;
    if (body === undefined || this.outcome.code !== GrpcStatus.OK) return;
    const type = this.method.responseType as string;
    for (const observe of this.observers ?? []) observe({ bytes: body, decode: () => decodeMessage(type, body) });
  }

  /** The chain rejected: an entry refused the call, or failed. */
  fail(error: unknown): void {
    this.outcome = outcomeOf(error);
  }

  private claim(): void {
    if (this.outcome !== undefined) throw new ProxyError('CHAIN_MISUSE', 'the call was already forwarded or answered');
  }
}

/**
 * How one chain entry makes calls on a client's behalf: the chain binds it to the entries after the entry, so the
 * calls pass exactly those. Reported on the client's call before they run.
 */
export class Downstream {
  private run: ((call: OwnCall) => Promise<void>) | undefined;

  constructor(
    private readonly backends: Backends,
    /** The name of the entry that makes the calls. */
    readonly by: string,
  ) {}

  /** Called by the chain the entry is in (each chain built with it binds it again: the last one wins). */
  bind(run: (call: OwnCall) => Promise<void>): void {
    this.run = run;
  }

  /** Runs one call; never rejects for the call's own failure, which is its outcome. */
  async call(parent: CallContext, spec: OwnCallSpec): Promise<OwnCallResult> {
    const run = this.run;
    if (run === undefined) throw new ProxyError('CHAIN_MISUSE', `interceptor "${this.by}" is in no chain to make calls through`);
    const own = new OwnCall(parent, spec, this.by, this.backends);
    const made = ownCallsOf(parent);
    parent.state.set(ownCallsKey, [...made, own]);
    try {
      await run(own);
    } catch (err) {
      own.fail(err);
    }
    return own.result;
  }
}
