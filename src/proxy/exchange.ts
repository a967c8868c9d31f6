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
  /** The request body if an interceptor already read it; otherwise the client's stream is piped. */
  readonly requestBody: Promise<Buffer> | undefined;
  readonly maxMessageBytes: number;
  readonly keepUnaryResponse: boolean;
  readonly observers: readonly ((message: StreamMessage) => void)[] | undefined;
  readonly responseType: string | undefined;
}

export interface ExchangeResult {
  /** Resolves (never rejects) when the runtime's side of the call is over. */
  readonly done: Promise<CallOutcome>;
  /** The runtime's trailers, or its trailers-only response headers. */
  readonly upstreamTrailers: () => { headers: http2.IncomingHttpHeaders; trailersOnly: boolean } | undefined;
  readonly unaryResponse: () => Buffer | undefined;
  cancel(): void;
}

/**
 * Relays one call to the runtime byte for byte: request bytes up, response headers, bytes and trailers
 * down, each direction paced by the slower side (HTTP/2 flow control does the rest), sizes checked on the
 * fly without buffering.
 */
export function forwardToUpstream(options: ExchangeOptions): ExchangeResult {
  const { upstream, client, maxMessageBytes } = options;
  let up: http2.ClientHttp2Stream | undefined;
  let proxyOutcome: CallOutcome | undefined;
  let responseChunks: Buffer[] | undefined = options.keepUnaryResponse ? [] : undefined;
  let trailers: { headers: http2.IncomingHttpHeaders; trailersOnly: boolean } | undefined;
  let responded = false;
  let lastError: unknown;

  const failWith = (error: ProxyError): void => {
    proxyOutcome ??= { code: error.grpcStatus, message: error.message, fromProxy: true };
    if (up && !up.closed) up.close(NGHTTP2_CANCEL);
  };

  const done = new Promise<CallOutcome>((resolve) => {
    try {
      up = upstream.request(options.headers);
    } catch (err) {
      const error = err instanceof ProxyError ? err : upstream.unavailable(err);
      resolve({ code: error.grpcStatus, message: error.message, fromProxy: true });
      return;
    }
    const stream = up;
    const scanner = new FrameScanner({
      maxMessageBytes,
      onMessage: options.observers ? observeWith(options.observers, options.responseType) : undefined,
    });

    stream.on('response', (headers, flags) => {
      responded = true;
      if (flags & END_STREAM) {
        trailers = { headers, trailersOnly: true };
        return;
      }
      if (!client.destroyed && !client.headersSent) client.respond(headers, { waitForTrailers: true });
    });
    stream.on('data', (chunk: Buffer) => {
      try {
        scanner.push(chunk);
      } catch (err) {
        failWith(tooLarge(err, 'response'));
        return;
      }
      responseChunks?.push(chunk);
      if (client.destroyed) return;
      if (!client.write(chunk)) {
        stream.pause();
        client.once('drain', () => stream.resume());
      }
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
    pumpRequest(stream);
  });

  function pumpRequest(stream: http2.ClientHttp2Stream): void {
    if (options.requestBody) {
      options.requestBody.then(
        (body) => stream.end(body),
        (err: unknown) => {
          failWith(err instanceof ProxyError ? err : new ProxyError('CANCELLED', errorMessage(err)));
        },
      );
      return;
    }
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
    if (trailers) return { ...readStatus(trailers.headers), fromProxy: false };
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
      if (!responseChunks) return undefined;
      if (responseChunks.length !== 1) responseChunks = [Buffer.concat(responseChunks)];
      return responseChunks[0];
    },
    cancel: () => {
      if (up && !up.closed) up.close(NGHTTP2_CANCEL);
    },
  };
}

function tooLarge(err: unknown, direction: 'request' | 'response'): ProxyError {
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
