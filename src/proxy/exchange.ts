import * as http2 from 'node:http2';
import { GrpcStatus, ProxyError, errorMessage } from '../errors';
import { decodeMessage } from './codec';
import { FrameScanner, MessageTooLargeError } from './grpc-frames';
import { readStatus } from './grpc-status';
import type { CallOutcome, DecodedMessage, StreamMessage } from './types';
import type { Upstream } from './upstream';

const { NGHTTP2_CANCEL } = http2.constants;
const END_STREAM = http2.constants.NGHTTP2_FLAG_END_STREAM;

export interface ExchangeOptions {
  readonly upstream: Upstream;
  readonly client: http2.ServerHttp2Stream;
  readonly headers: http2.OutgoingHttpHeaders;
  /** The whole request when it was read first (unary calls); otherwise the client's stream is piped. */
  readonly requestBody: Promise<Buffer> | undefined;
  readonly maxMessageBytes: number;
  /** A known unary call: its response is held and sent in one go, with its status. */
  readonly unary: boolean;
  readonly observers: readonly ((message: StreamMessage) => void)[] | undefined;
  readonly responseType: string | undefined;
}

export interface UpstreamTrailers {
  readonly headers: http2.IncomingHttpHeaders;
  readonly trailersOnly: boolean;
}

export interface ExchangeResult {
  /** Resolves (never rejects) when the runtime's side of the call is over. */
  readonly done: Promise<CallOutcome>;
  /** The runtime's trailers, or its trailers-only response headers. */
  readonly upstreamTrailers: () => UpstreamTrailers | undefined;
  /** The whole response body of a unary call. */
  readonly unaryResponse: () => Buffer | undefined;
  /** Sends what is still held back (response headers and data of a unary call) to the client. */
  flushHeld(): void;
  cancel(): void;
}

/** A unary response up to this size is held and sent with its status in one write; larger ones stream. */
const HOLD_LIMIT = 64 * 1024;

/**
 * Relays one call to the runtime byte for byte: request bytes up, response headers, bytes and trailers
 * down, each direction paced by the slower side (HTTP/2 flow control does the rest), sizes checked on the
 * fly. Unary calls go up as one request and come back as one response: fewer frames and writes per call.
 */
export function forwardToUpstream(options: ExchangeOptions): ExchangeResult {
  const { upstream, client, maxMessageBytes } = options;
  let up: http2.ClientHttp2Stream | undefined;
  let proxyOutcome: CallOutcome | undefined;
  let trailers: UpstreamTrailers | undefined;
  let responded = false;
  let lastError: unknown;
  let unaryChunks: Buffer[] | undefined = options.unary ? [] : undefined;
  let heldHeaders: http2.IncomingHttpHeaders | undefined;
  let held: Buffer[] | undefined = options.unary ? [] : undefined;
  let heldBytes = 0;

  const failWith = (error: ProxyError): void => {
    proxyOutcome ??= { code: error.grpcStatus, message: error.message, fromProxy: true };
    if (up && !up.closed) up.close(NGHTTP2_CANCEL);
  };

  const writeToClient = (stream: http2.ClientHttp2Stream, chunk: Buffer): void => {
    if (client.destroyed || client.writableEnded) return;
    if (!client.write(chunk)) {
      stream.pause();
      client.once('drain', () => stream.resume());
    }
  };

  const flushHeld = (): void => {
    if (client.destroyed || client.closed) return;
    if (heldHeaders && !client.headersSent) client.respond(heldHeaders, { waitForTrailers: true });
    heldHeaders = undefined;
    const pending = held;
    held = undefined;
    if (pending && up) for (const chunk of pending) writeToClient(up, chunk);
  };

  const done = new Promise<CallOutcome>((resolve) => {
    const start = (body: Buffer | undefined): void => {
      let stream: http2.ClientHttp2Stream;
      try {
        stream = upstream.request(options.headers);
      } catch (err) {
        const error = err instanceof ProxyError ? err : upstream.unavailable(err);
        resolve({ code: error.grpcStatus, message: error.message, fromProxy: true });
        return;
      }
      up = stream;
      const scanner = new FrameScanner({
        maxMessageBytes,
        onMessage: options.observers ? observeWith(options.observers, options.responseType) : undefined,
      });
      stream.on('response', (headers, flags) => {
        responded = true;
        if (flags & END_STREAM) trailers = { headers, trailersOnly: true };
        else if (held) heldHeaders = headers;
        else if (!client.destroyed && !client.headersSent) client.respond(headers, { waitForTrailers: true });
      });
      stream.on('data', (chunk: Buffer) => {
        try {
          scanner.push(chunk);
        } catch (err) {
          failWith(tooLarge(err, 'response'));
          return;
        }
        unaryChunks?.push(chunk);
        if (!held) {
          writeToClient(stream, chunk);
          return;
        }
        held.push(chunk);
        heldBytes += chunk.length;
        if (heldBytes > HOLD_LIMIT) flushHeld();
      });
      stream.on('trailers', (headers: http2.IncomingHttpHeaders) => {
        trailers = { headers, trailersOnly: false };
      });
      stream.on('error', (err) => {
        lastError = err;
      });
      stream.on('close', () => {
        resolve(outcomeOf(stream));
      });
      if (body) stream.end(body);
      else pipeRequest(stream);
    };
    if (!options.requestBody) {
      start(undefined);
      return;
    }
    options.requestBody.then(start, (err: unknown) => {
      const error = err instanceof ProxyError ? err : new ProxyError('CANCELLED', errorMessage(err));
      resolve({ code: error.grpcStatus, message: error.message, fromProxy: true });
    });
  });

  function pipeRequest(stream: http2.ClientHttp2Stream): void {
    const scanner = new FrameScanner({ maxMessageBytes });
    client.on('data', (chunk: Buffer) => {
      try {
        scanner.push(chunk);
      } catch (err) {
        failWith(tooLarge(err, 'request'));
        return;
      }
      if (!stream.write(chunk)) {
        client.pause();
        stream.once('drain', () => client.resume());
      }
    });
    client.once('end', () => stream.end());
  }

  function outcomeOf(stream: http2.ClientHttp2Stream): CallOutcome {
    if (proxyOutcome) return proxyOutcome;
    if (trailers) {
      const status = readStatus(trailers.headers);
      return { code: status.code, message: status.message, fromProxy: false };
    }
    if (!responded) {
      const error = upstream.unavailable(lastError ?? new Error(`stream reset (code ${stream.rstCode ?? 'none'})`));
      return { code: error.grpcStatus, message: error.message, fromProxy: true };
    }
    return {
      code: GrpcStatus.INTERNAL,
      message: `cri-proxy: runtime "${upstream.name}" ended the call without a status (reset code ${stream.rstCode ?? 'none'})`,
      fromProxy: true,
    };
  }

  return {
    done,
    upstreamTrailers: () => trailers,
    unaryResponse: () => {
      if (!unaryChunks) return undefined;
      if (unaryChunks.length !== 1) unaryChunks = [Buffer.concat(unaryChunks)];
      return unaryChunks[0];
    },
    flushHeld,
    cancel: () => {
      if (up && !up.closed) up.close(NGHTTP2_CANCEL);
    },
  };
}

export function tooLarge(err: unknown, direction: 'request' | 'response'): ProxyError {
  if (err instanceof MessageTooLargeError) {
    return new ProxyError(
      'MESSAGE_TOO_LARGE',
      `cri-proxy: ${direction} message of ${err.size} bytes exceeds the limit of ${err.limit} bytes (maxMessageBytes)`,
    );
  }
  return new ProxyError('UPSTREAM_PROTOCOL', errorMessage(err));
}

function observeWith(
  observers: readonly ((message: StreamMessage) => void)[],
  responseType: string | undefined,
): (bytes: Buffer, compressed: boolean) => void {
  return (bytes, compressed) => {
    let decoded: DecodedMessage | undefined;
    const message: StreamMessage = {
      bytes,
      decode: () => {
        if (compressed || responseType === undefined) return undefined;
        return (decoded ??= decodeMessage(responseType, bytes));
      },
    };
    for (const observer of observers) {
      try {
        observer(message);
      } catch {
        // Observers are observational: a broken one must never disturb the stream.
      }
    }
  };
}
