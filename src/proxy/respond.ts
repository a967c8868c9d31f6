import type * as http2 from 'node:http2';
import { statusHeaders, statusTrailers } from './grpc-status';
import type { ExchangeResult } from './exchange';

/** Ends the client's stream with a status of the proxy's own: trailers-only if nothing was sent yet. */
export function respondWithStatus(stream: http2.ServerHttp2Stream, code: number, message: string): void {
  if (!stream.headersSent) {
    stream.respond(statusHeaders(code, message), { endStream: true });
    return;
  }
  endWithTrailers(stream, statusTrailers(code, message));
}

/** Ends the client's stream with exactly the status, message and trailers the runtime sent. */
export function finishWithUpstreamStatus(stream: http2.ServerHttp2Stream, result: ExchangeResult): void {
  const trailers = result.upstreamTrailers();
  if (!trailers) {
    respondWithStatus(stream, 13, 'cri-proxy: the runtime sent no status');
    return;
  }
  if (trailers.trailersOnly && !stream.headersSent) {
    stream.respond(trailers.headers, { endStream: true });
    return;
  }
  result.flushHeld();
  endWithTrailers(stream, trailers.headers);
}

function endWithTrailers(stream: http2.ServerHttp2Stream, trailers: http2.OutgoingHttpHeaders): void {
  if (stream.writableEnded) {
    // respond() without waitForTrailers cannot happen here; ending twice would throw.
    return;
  }
  stream.once('wantTrailers', () => {
    stream.sendTrailers(stripPseudo(trailers));
  });
  stream.end();
}

function stripPseudo(headers: http2.OutgoingHttpHeaders): http2.OutgoingHttpHeaders {
  if (headers[':status'] === undefined) return headers;
  const rest = { ...headers };
  delete rest[':status'];
  return rest;
}
