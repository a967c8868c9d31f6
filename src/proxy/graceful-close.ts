import * as http2 from 'node:http2';

/** The highest stream id HTTP/2 allows: "every stream you may have sent is still taken". */
const MAX_STREAM_ID = 2 ** 31 - 1;

/**
 * First step of HTTP/2's graceful shutdown (RFC 9113 §6.8), as gRPC servers do it: a GOAWAY that still takes
 * every stream the client may have sent, then a PING to know the client has seen it. A client that got the
 * GOAWAY opens its next calls on a new connection (the next proxy, under socket activation); streams it sent
 * before seeing it are still served. `session.close()` afterwards sends the final GOAWAY with the real last
 * stream id. Resolves after the PING's answer, when the client hangs up, or after `timeoutMs`: Node.js
 * clients (grpc-js among them) stop answering PINGs once they have a GOAWAY, and retry a refused stream anyway.
 */
export function announceShutdown(session: http2.Http2Session, timeoutMs: number): Promise<void> {
  if (session.closed || session.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    const done = (): void => {
      clearTimeout(timer);
      session.off('close', done);
      resolve();
    };
    // A client without calls may simply hang up on the GOAWAY; that answers it too.
    session.once('close', done);
    try {
      session.goaway(http2.constants.NGHTTP2_NO_ERROR, MAX_STREAM_ID);
      if (!session.ping(done)) done();
    } catch {
      // The session went away meanwhile; there is nothing left to announce.
      done();
    }
  });
}

/** Final GOAWAY; resolves once the session's last stream has ended and it is gone. */
export function closeSession(session: http2.Http2Session): Promise<void> {
  if (session.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    session.once('close', () => resolve());
    // close() calls back on nothing when the session is already closing; its 'close' event still comes.
    if (!session.closed) session.close();
  });
}
