import type { CallOptions, StreamEnd, StreamOptions, UnaryReply } from '../chain/backends';
import { GrpcStatus, ProxyError } from '../errors';
import { FrameScanner, MessageTooLargeError, frameMessage, unframeSingle } from './grpc-frames';
import { readStatusFields } from './grpc-status';
import type { HeaderBlock } from './http2/hpack-decoder';
import { ownCallFields } from './request-headers';
import type { RuntimeConnection, StreamFailure, UpstreamHandler, UpstreamStream } from './runtime-connection';

/** The runtime a call on the proxy's own behalf goes to (an Upstream). */
interface RuntimeTarget {
  readonly options: { readonly maxMessageBytes: number };
  connection(): RuntimeConnection | ProxyError;
  unavailable(cause: unknown): ProxyError;
}

/** A unary call the proxy makes on its own behalf (readiness, image lookups, routing): bounded in time and size. */
export function callRuntime(upstream: RuntimeTarget, path: string, request: Buffer, options: number | CallOptions): Promise<UnaryReply> {
  const { timeoutMs, metadata = [] } = typeof options === 'number' ? { timeoutMs: options } : options;
  return new Promise((resolve, reject) => {
    const conn = upstream.connection();
    if (conn instanceof ProxyError) {
      reject(conn);
      return;
    }
    const handler = new UnaryCollector(upstream, path, resolve, reject);
    const stream = conn.open(ownCallFields(path, timeoutMs, metadata), handler);
    conn.sendData(stream, frameMessage(request), true);
    handler.start(conn, stream, timeoutMs);
  });
}

class UnaryCollector implements UpstreamHandler {
  private readonly parts: Buffer[] = [];
  private readonly scanner: FrameScanner;
  private conn: RuntimeConnection | undefined;
  private stream: UpstreamStream | undefined;
  private timer: NodeJS.Timeout | undefined;
  private done = false;

  constructor(
    private readonly upstream: RuntimeTarget,
    private readonly path: string,
    private readonly resolve: (reply: UnaryReply) => void,
    private readonly reject: (error: unknown) => void,
  ) {
    this.scanner = new FrameScanner({ maxMessageBytes: upstream.options.maxMessageBytes });
  }

  start(conn: RuntimeConnection, stream: UpstreamStream, timeoutMs: number): void {
    this.conn = conn;
    this.stream = stream;
    if (this.done) return;
    this.timer = setTimeout(
      () => this.fail(new ProxyError('DEADLINE_EXCEEDED', `${this.path} took longer than ${timeoutMs} ms`)),
      timeoutMs,
    );
    this.timer.unref();
  }

  onResponseHeaders(block: HeaderBlock, end: boolean): void {
    if (!end) return;
    const status = readStatusFields(block.fields);
    const whole = this.parts.length === 1 ? (this.parts[0] as Buffer) : Buffer.concat(this.parts);
    this.settle(() => this.resolve({ ...status, body: unframeSingle(whole), trailers: block.fields }));
  }

  onResponseData(data: Buffer): void {
    if (this.done) return;
    if (this.stream !== undefined) this.conn?.consumed(this.stream, data.length);
    try {
      this.scanner.push(data);
    } catch (err) {
      const size = err instanceof MessageTooLargeError ? err.size : 0;
      this.fail(new ProxyError('MESSAGE_TOO_LARGE', `${this.path}: response message of ${size} bytes exceeds maxMessageBytes`));
      return;
    }
    this.parts.push(data);
  }

  onStreamFailed(failure: StreamFailure): void {
    this.settle(() => this.reject(this.upstream.unavailable(failure.error ?? new Error(`stream reset (code ${failure.code ?? 'none'})`))));
  }

  private fail(error: ProxyError): void {
    if (this.stream !== undefined && !this.stream.closed) this.conn?.cancel(this.stream);
    this.settle(() => this.reject(error));
  }

  private settle(report: () => void): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    report();
  }
}

/**
 * A server-streaming call the proxy makes on its own behalf (routing's merged streams). Each response message
 * goes to `onMessage` in order; while a promise it returned is pending, nothing more is delivered and the
 * runtime is not credited, so a slow consumer slows the runtime instead of growing a buffer. Never rejects:
 * an unreachable runtime ends the call UNAVAILABLE.
 */
export function streamRuntime(
  upstream: RuntimeTarget,
  path: string,
  request: Buffer,
  options: StreamOptions,
  onMessage: (message: Buffer) => void | Promise<void>,
): Promise<StreamEnd> {
  return new Promise((resolve) => {
    const conn = upstream.connection();
    if (conn instanceof ProxyError) {
      resolve({ code: conn.grpcStatus, message: conn.message, trailers: [] });
      return;
    }
    const timeoutMs = options.deadline === undefined ? undefined : options.deadline - Date.now();
    const handler = new StreamCollector(upstream, onMessage, resolve);
    const stream = conn.open(ownCallFields(path, timeoutMs, options.metadata ?? []), handler);
    handler.attach(conn, stream, options.signal);
    conn.sendData(stream, frameMessage(request), true);
  });
}

class StreamCollector implements UpstreamHandler {
  private readonly scanner: FrameScanner;
  /** Messages waiting for the consumer, with the bytes to credit once each is taken. */
  private readonly queue: { message: Buffer | undefined; credit: number }[] = [];
  private busy = false;
  private ending: StreamEnd | undefined;
  private done = false;
  private conn: RuntimeConnection | undefined;
  private stream: UpstreamStream | undefined;

  constructor(
    private readonly upstream: RuntimeTarget,
    private readonly onMessage: (message: Buffer) => void | Promise<void>,
    private readonly resolve: (end: StreamEnd) => void,
  ) {
    this.scanner = new FrameScanner({
      maxMessageBytes: upstream.options.maxMessageBytes,
      onMessage: (message) => this.queue.push({ message, credit: 0 }),
    });
  }

  attach(conn: RuntimeConnection, stream: UpstreamStream, signal: AbortSignal | undefined): void {
    this.conn = conn;
    this.stream = stream;
    if (signal === undefined) return;
    const abort = (): void => {
      if (!stream.closed) conn.cancel(stream);
      this.finish({ code: GrpcStatus.CANCELLED, message: 'cancelled', trailers: [] });
    };
    if (signal.aborted) abort();
    else signal.addEventListener('abort', abort, { once: true });
  }

  onResponseHeaders(block: HeaderBlock, end: boolean): void {
    if (!end) return;
    this.ending = { ...readStatusFields(block.fields), trailers: block.fields };
    this.drain();
  }

  onResponseData(data: Buffer): void {
    if (this.done) return;
    try {
      this.scanner.push(data);
    } catch (err) {
      const size = err instanceof MessageTooLargeError ? err.size : 0;
      if (this.stream !== undefined && !this.stream.closed) this.conn?.cancel(this.stream);
      this.finish({
        code: GrpcStatus.RESOURCE_EXHAUSTED,
        message: `response message of ${size} bytes exceeds maxMessageBytes`,
        trailers: [],
      });
      return;
    }
    // The bytes are credited once the messages they completed have been taken.
    this.queue.push({ message: undefined, credit: data.length });
    this.drain();
  }

  onStreamFailed(failure: StreamFailure): void {
    const error = this.upstream.unavailable(failure.error ?? new Error(`stream reset (code ${failure.code ?? 'none'})`));
    this.ending = { code: error.grpcStatus, message: error.message, trailers: [] };
    this.drain();
  }

  private drain(): void {
    while (!this.busy && !this.done) {
      const next = this.queue.shift();
      if (next === undefined) {
        if (this.ending !== undefined) this.finish(this.ending);
        return;
      }
      if (next.message === undefined) {
        if (this.stream !== undefined) this.conn?.consumed(this.stream, next.credit);
        continue;
      }
      const taken = this.onMessage(next.message);
      if (taken instanceof Promise) {
        this.busy = true;
        taken.then(
          () => {
            this.busy = false;
            this.drain();
          },
          () => {
            this.busy = false;
            if (this.stream !== undefined && !this.stream.closed) this.conn?.cancel(this.stream);
            this.finish({ code: GrpcStatus.CANCELLED, message: 'the consumer stopped taking messages', trailers: [] });
          },
        );
      }
    }
  }

  private finish(end: StreamEnd): void {
    if (this.done) return;
    this.done = true;
    this.queue.length = 0;
    this.resolve(end);
  }
}
