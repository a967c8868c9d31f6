import type * as grpc from '@grpc/grpc-js';
import type { ChainEntry } from '../../src/chain/chain';
import type { CallContext, Next } from '../../src/chain/types';

/** A chain entry around a test's own `intercept`. */
export function interceptorEntry(name: string, intercept: (ctx: CallContext, next: Next) => Promise<void>): ChainEntry {
  return { interceptor: { name, intercept }, onError: 'failClosed', methods: undefined };
}

/** An interceptor that reads every request before forwarding it, as image policy and routing do. */
export const readsRequests: ChainEntry = interceptorEntry('reader', async (ctx, next) => {
  await ctx.requestBytes();
  return next();
});

/** Every message of a server stream, and its status. */
export function collectStream(stream: grpc.ClientReadableStream<Buffer>): Promise<{ messages: Buffer[]; status: grpc.StatusObject }> {
  return new Promise((resolve) => {
    const messages: Buffer[] = [];
    stream.on('data', (m: Buffer) => messages.push(m));
    stream.on('error', () => undefined);
    stream.on('status', (status: grpc.StatusObject) => resolve({ messages, status }));
  });
}
