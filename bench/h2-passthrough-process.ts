/**
 * Reference row `h2-passthrough`: what terminating HTTP/2 twice in node:http2 costs with nothing else on top.
 * An http2 server whose every stream is relayed to one http2 session to the runtime: headers copied, request
 * piped up, response headers, data and trailers relayed down, resets passed on both ways. Simple and correct,
 * not optimised. It has no special case for a socket path as `:authority` (the bench sends a normal one).
 * `node h2-passthrough-process.js LISTEN_SOCKET RUNTIME_SOCKET`, forked by the bench.
 */
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { serveReference } from './reference-process';

const { NGHTTP2_CANCEL, NGHTTP2_FLAG_END_STREAM, NGHTTP2_NO_ERROR } = http2.constants;

/** Headers for the other side: node:http2 builds the pseudo-headers of a new stream itself, except these. */
function copyHeaders(headers: http2.IncomingHttpHeaders, keepPseudo: readonly string[]): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = {};
  for (const [key, value] of Object.entries(headers)) {
    if (value === undefined || (key.startsWith(':') && !keepPseudo.includes(key))) continue;
    out[key] = value;
  }
  return out;
}

class RuntimeSession {
  private session: http2.ClientHttp2Session | undefined;

  constructor(private readonly socketPath: string) {}

  /** The one session to the runtime, opened again when the previous one has gone. */
  get(): http2.ClientHttp2Session {
    const current = this.session;
    if (current !== undefined && !current.closed && !current.destroyed) return current;
    const session = http2.connect('http://localhost', { createConnection: () => net.connect(this.socketPath) });
    session.on('error', () => undefined);
    session.on('close', () => {
      if (this.session === session) this.session = undefined;
    });
    this.session = session;
    return session;
  }
}

function relay(down: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, runtime: RuntimeSession): void {
  down.on('error', () => undefined);
  let up: http2.ClientHttp2Stream;
  try {
    up = runtime.get().request(copyHeaders(headers, [':method', ':path']));
  } catch (err) {
    const message = encodeURIComponent(err instanceof Error ? err.message : String(err));
    down.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '14', 'grpc-message': message }, { endStream: true });
    return;
  }
  up.on('error', () => undefined);
  let trailers: http2.OutgoingHttpHeaders = {};
  up.on('response', (responseHeaders, flags) => {
    if (down.closed) return;
    const trailersOnly = (flags & NGHTTP2_FLAG_END_STREAM) !== 0;
    down.respond(copyHeaders(responseHeaders, [':status']), trailersOnly ? { endStream: true } : { waitForTrailers: true });
    if (trailersOnly) up.resume();
    else up.pipe(down);
  });
  up.on('trailers', (t: http2.IncomingHttpHeaders) => {
    trailers = copyHeaders(t, []);
  });
  down.on('wantTrailers', () => down.sendTrailers(trailers));
  down.pipe(up);
  // A reset on either side resets the other; a clean end has already been passed on by pipe().
  up.on('close', () => {
    const code = up.rstCode ?? NGHTTP2_NO_ERROR;
    if (code !== NGHTTP2_NO_ERROR && !down.closed) down.close(code);
  });
  down.on('close', () => {
    if (!up.closed) up.close(NGHTTP2_CANCEL);
  });
}

serveReference('h2-passthrough-process', (runtimeSocket) => {
  const runtime = new RuntimeSession(runtimeSocket);
  const server = http2.createServer();
  server.on('stream', (stream, headers) => relay(stream, headers, runtime));
  server.on('sessionError', () => undefined);
  return server;
});
