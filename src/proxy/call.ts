import * as http2 from 'node:http2';
import { GrpcStatus, ProxyError, errorMessage } from '../errors';
import type { Logger } from '../log';
import { decodeMessage, fieldAt } from './codec';
import { FrameScanner, MessageTooLargeError, unframeSingle } from './grpc-frames';
import { formatGrpcTimeout, parseGrpcTimeout } from './grpc-status';
import { forwardToUpstream, tooLarge, type ExchangeResult } from './exchange';
import type { Router } from './router';
import type {
  CallContext,
  CallOutcome,
  CriField,
  DecodedMessage,
  MethodInfo,
  StreamMessage,
} from './types';
import { respondWithStatus, finishWithUpstreamStatus } from './respond';

export interface CallEnvironment {
  readonly maxMessageBytes: number;
  readonly log: Logger;
  readonly router: Router;
}

const noop = (): void => undefined;

/**
 * One CRI call in flight: the context interceptors see, and the state needed to finish the client's stream
 * once the chain has run. Nothing is decoded or buffered unless an interceptor asks for it.
 */
export class Call implements CallContext {
  readonly startedAt = process.hrtime.bigint();
  private readonly arrivedAt = Date.now();
  backend: string | undefined = undefined;
  upstreamNanos = 0n;
  outcome: CallOutcome | undefined = undefined;
  private stateMap: Map<unknown, unknown> | undefined;
  private extraHeaders: http2.OutgoingHttpHeaders | undefined;
  private abortController: AbortController | undefined;
  private requestBody: Promise<Buffer> | undefined;
  private decodedRequest: Promise<DecodedMessage | undefined> | undefined;
  private result: ExchangeResult | undefined;
  private observers: ((message: StreamMessage) => void)[] | undefined;
  private finished = false;
  clientGone = false;

  constructor(
    readonly stream: http2.ServerHttp2Stream,
    readonly metadata: http2.IncomingHttpHeaders,
    readonly method: MethodInfo,
    private readonly env: CallEnvironment,
  ) {
    stream.on('error', noop);
    stream.once('close', () => {
      if (this.finished && this.outcome) return;
      this.clientGone = true;
      this.abortController?.abort(new ProxyError('CANCELLED', 'the client cancelled the call'));
      this.result?.cancel();
    });
  }

  get log(): Logger {
    return this.env.log;
  }

  get state(): Map<unknown, unknown> {
    return (this.stateMap ??= new Map());
  }

  get upstreamMetadata(): http2.OutgoingHttpHeaders {
    return (this.extraHeaders ??= {});
  }

  get signal(): AbortSignal {
    if (!this.abortController) {
      this.abortController = new AbortController();
      if (this.clientGone) this.abortController.abort(new ProxyError('CANCELLED', 'the client cancelled the call'));
    }
    return this.abortController.signal;
  }

  get deadline(): number | undefined {
    const timeout = parseGrpcTimeout(this.metadata['grpc-timeout']);
    return timeout === undefined ? undefined : this.arrivedAt + timeout;
  }

  request(): Promise<DecodedMessage | undefined> {
    const type = this.method.requestType;
    if (type === undefined) return Promise.resolve(undefined);
    return (this.decodedRequest ??= this.collectRequest().then((body) => {
      const message = unframeSingle(body);
      if (message === undefined) {
        throw new ProxyError('MALFORMED_REQUEST', `${this.method.name}: the request is not one uncompressed gRPC message`);
      }
      return decodeMessage(type, message);
    }));
  }

  async requestField(field: CriField): Promise<string | undefined> {
    const path = this.method.requestFields[field];
    if (path === undefined) return undefined;
    return fieldAt(await this.request(), path);
  }

  response(): DecodedMessage | undefined {
    const type = this.method.responseType;
    const body = this.result?.unaryResponse();
    if (type === undefined || body === undefined || this.outcome?.code !== GrpcStatus.OK) return undefined;
    const message = unframeSingle(body);
    return message === undefined ? undefined : decodeMessage(type, message);
  }

  onResponseMessage(observer: (message: StreamMessage) => void): void {
    (this.observers ??= []).push(observer);
  }

  /** The last step of every chain: send the call to the runtime the router picks and relay its answer. */
  async forward(): Promise<void> {
    if (this.outcome) throw new ProxyError('CHAIN_MISUSE', 'the call was already forwarded');
    if (this.clientGone) {
      this.outcome = { code: GrpcStatus.CANCELLED, message: 'the client cancelled the call', fromProxy: true };
      return;
    }
    const upstream = this.env.router.pick(this.backend);
    this.backend = upstream.name;
    const headers = this.upstreamHeaders();
    if (headers === undefined) {
      throw new ProxyError('DEADLINE_EXCEEDED', 'the deadline expired before the call reached the runtime');
    }
    const sentAt = process.hrtime.bigint();
    const unary = this.method.kind === 'unary';
    this.result = forwardToUpstream({
      upstream,
      client: this.stream,
      headers,
      // A unary request is one message: read it whole, then send headers and body to the runtime at once.
      requestBody: unary ? this.collectRequest() : this.requestBody,
      maxMessageBytes: this.env.maxMessageBytes,
      unary,
      observers: this.observers,
      responseType: this.method.responseType,
    });
    const outcome = await this.result.done;
    this.upstreamNanos = process.hrtime.bigint() - sentAt;
    this.outcome = this.clientGone && outcome.fromProxy ? { ...outcome, code: GrpcStatus.CANCELLED } : outcome;
  }

  /** Sends the call's final status to the client once the chain has run; `error` overrides the runtime's. */
  finish(error?: unknown): void {
    if (this.finished) return;
    this.finished = true;
    if (error !== undefined) {
      const proxyError = toProxyError(error);
      this.outcome = { code: proxyError.grpcStatus, message: proxyError.message, fromProxy: true };
      this.result?.cancel();
    } else if (!this.outcome) {
      this.outcome = { code: GrpcStatus.INTERNAL, message: 'cri-proxy: the interceptor chain ended without forwarding the call', fromProxy: true };
    }
    const outcome = this.outcome;
    this.logOutcome(outcome);
    if (this.stream.destroyed || this.stream.closed) return;
    if (outcome.fromProxy || !this.result) respondWithStatus(this.stream, outcome.code, outcome.message);
    else finishWithUpstreamStatus(this.stream, this.result);
  }

  private upstreamHeaders(): http2.OutgoingHttpHeaders | undefined {
    // The client's headers stay as received for interceptors; a copy carries what they add.
    const headers: http2.OutgoingHttpHeaders = this.extraHeaders ? { ...this.metadata, ...this.extraHeaders } : this.metadata;
    // Time spent in interceptors is taken off the deadline the runtime sees.
    if (headers['grpc-timeout'] !== undefined && Number(process.hrtime.bigint() - this.startedAt) > 1e6) {
      const deadline = this.deadline;
      if (deadline !== undefined) {
        const remaining = deadline - Date.now();
        if (remaining <= 0) return undefined;
        return { ...headers, 'grpc-timeout': formatGrpcTimeout(remaining) };
      }
    }
    return headers;
  }

  private collectRequest(): Promise<Buffer> {
    return (this.requestBody ??= new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const scanner = new FrameScanner({ maxMessageBytes: this.env.maxMessageBytes });
      const stream = this.stream;
      const onData = (chunk: Buffer): void => {
        try {
          scanner.push(chunk);
        } catch (err) {
          stream.off('data', onData);
          reject(toProxyError(err, 'request'));
          return;
        }
        chunks.push(chunk);
      };
      let ended = false;
      stream.on('data', onData);
      stream.once('end', () => {
        ended = true;
        resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks));
      });
      // Every stream closes; only one closed before its request ended was cancelled (an Error is costly).
      stream.once('close', () => {
        if (!ended) reject(new ProxyError('CANCELLED', 'the client cancelled the call'));
      });
    }));
  }

  private logOutcome(outcome: CallOutcome): void {
    const level = outcome.fromProxy && outcome.code !== GrpcStatus.OK ? 'warn' : this.method.polling ? 'debug' : 'info';
    const log = this.env.log;
    if (!log.enabled(level)) return;
    log[level]('call', {
      method: this.method.path,
      code: outcome.code,
      ...(outcome.code === GrpcStatus.OK ? {} : { message: outcome.message }),
      fromProxy: outcome.fromProxy,
      backend: this.backend,
      durationMs: Number(process.hrtime.bigint() - this.startedAt) / 1e6,
    });
  }
}

export function toProxyError(err: unknown, direction: 'request' | 'response' = 'request'): ProxyError {
  if (err instanceof ProxyError) return err;
  if (err instanceof MessageTooLargeError) return tooLarge(err, direction);
  return new ProxyError('INTERCEPTOR_FAILED', `cri-proxy: ${errorMessage(err)}`, { cause: err });
}
