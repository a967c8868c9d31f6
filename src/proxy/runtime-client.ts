import * as http2 from 'node:http2';
import { ProxyError, errorMessage } from '../errors';
import { decodeMessage, encodeMessage } from './codec';
import { FrameScanner, frameMessage, unframeSingle } from './grpc-frames';
import { readStatus } from './grpc-status';
import type { DecodedMessage } from './types';
import type { Upstream } from './upstream';

export interface UnaryReply {
  readonly code: number;
  readonly message: string;
  readonly body: Buffer | undefined;
}

/** A call the proxy makes on its own behalf (readiness, image lookups): unary, bounded in time and size. */
export function callRuntime(upstream: Upstream, path: string, request: Buffer, timeoutMs: number): Promise<UnaryReply> {
  return new Promise((resolve, reject) => {
    let stream: http2.ClientHttp2Stream;
    try {
      stream = upstream.request({
        ':method': 'POST',
        ':path': path,
        'content-type': 'application/grpc',
        te: 'trailers',
        'grpc-timeout': `${Math.max(1, Math.ceil(timeoutMs))}m`,
        'user-agent': 'cri-proxy',
      });
    } catch (err) {
      reject(err instanceof ProxyError ? err : upstream.unavailable(err));
      return;
    }
    const chunks: Buffer[] = [];
    const scanner = new FrameScanner({ maxMessageBytes: upstream.options.maxMessageBytes });
    let status: { code: number; message: string } | undefined;
    let failure: unknown;
    const timer = setTimeout(() => {
      failure = new ProxyError('DEADLINE_EXCEEDED', `${path} took longer than ${timeoutMs} ms`);
      stream.close(http2.constants.NGHTTP2_CANCEL);
    }, timeoutMs);
    stream.on('response', (headers, flags) => {
      if (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) status = readStatus(headers);
    });
    stream.on('data', (chunk: Buffer) => {
      try {
        scanner.push(chunk);
        chunks.push(chunk);
      } catch (err) {
        failure = new ProxyError('MESSAGE_TOO_LARGE', `${path}: ${errorMessage(err)}`);
        stream.close(http2.constants.NGHTTP2_CANCEL);
      }
    });
    stream.on('trailers', (trailers: http2.IncomingHttpHeaders) => {
      status = readStatus(trailers);
    });
    stream.on('error', (err) => {
      failure ??= err;
    });
    stream.on('close', () => {
      clearTimeout(timer);
      if (status && failure === undefined) {
        resolve({ ...status, body: unframeSingle(Buffer.concat(chunks)) });
        return;
      }
      reject(failure instanceof ProxyError ? failure : upstream.unavailable(failure ?? new Error('no status')));
    });
    stream.end(frameMessage(request));
  });
}

/** Encodes, calls and decodes one CRI method; a non-OK status becomes a ProxyError-free reply the caller inspects. */
export async function callRuntimeTyped(
  upstream: Upstream,
  method: { path: string; requestType: string; responseType: string },
  request: Readonly<Record<string, unknown>>,
  timeoutMs: number,
): Promise<{ code: number; message: string; response: DecodedMessage | undefined }> {
  const reply = await callRuntime(upstream, method.path, encodeMessage(method.requestType, request), timeoutMs);
  const response = reply.code === 0 && reply.body ? decodeMessage(method.responseType, reply.body) : undefined;
  return { code: reply.code, message: reply.message, response };
}
