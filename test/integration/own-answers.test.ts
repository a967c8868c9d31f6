import * as grpc from '@grpc/grpc-js';
import { ProxyError } from '../../src/errors';
import { decodeMessage, encodeMessage } from '../../src/messages/codec';
import { PROXY_ERROR_TRAILER } from '../../src/proxy/grpc-status';
import { callRuntime, streamRuntime } from '../../src/proxy/runtime-client';
import { collectStream, interceptorEntry } from '../support/calls';
import { startTestProxy, type TestProxy } from '../support/proxy-harness';
import { waitFor } from '../support/wait';

describe('answers the proxy gives itself', () => {
  let proxy: TestProxy;
  afterEach(async () => {
    await proxy.close();
  });

  test('messages it built, with OK, and the runtime is never called', async () => {
    const built = encodeMessage('runtime.v1.VersionResponse', { runtime_name: 'merged' });
    const answer = interceptorEntry('answer', (ctx) => {
      ctx.respond({ messages: [built] });
      return Promise.resolve();
    });
    proxy = await startTestProxy({ entries: [answer] });
    const result = await proxy.client().unary('/runtime.v1.RuntimeService/Version', Buffer.alloc(0));
    expect(result.status.code).toBe(grpc.status.OK);
    expect(result.response?.equals(built)).toBe(true);
    expect(proxy.runtime.calls).toHaveLength(0);
  });

  test('interceptors before the one that answered read its answer as the response', async () => {
    const built = encodeMessage('runtime.v1.ImageStatusResponse', { image: { id: 'sha256:abc', repo_tags: ['a:1'] } });
    const seen: unknown[] = [];
    const observe = interceptorEntry('observe', async (ctx, next) => {
      await next();
      seen.push(ctx.response());
    });
    const answer = interceptorEntry('answer', (ctx) => {
      ctx.respond({ messages: [built] });
      return Promise.resolve();
    });
    proxy = await startTestProxy({ entries: [observe, answer] });
    const result = await proxy.client().unary('/runtime.v1.ImageService/ImageStatus', Buffer.alloc(0));
    expect(result.status.code).toBe(grpc.status.OK);
    expect(seen).toEqual([{ image: { id: 'sha256:abc', repo_tags: ['a:1'] } }]);
  });

  test('a status of any code, with its message', async () => {
    const answer = interceptorEntry('answer', (ctx) => {
      ctx.respond({ code: grpc.status.UNIMPLEMENTED, message: 'not on "crio" 100%' });
      return Promise.resolve();
    });
    proxy = await startTestProxy({ entries: [answer] });
    const result = await proxy.client().unary('/runtime.v1.RuntimeService/ListPodSandboxMetrics', Buffer.alloc(0));
    expect(result.status.code).toBe(grpc.status.UNIMPLEMENTED);
    expect(result.status.details).toBe('not on "crio" 100%');
  });

  test("a runtime's answer relayed with its trailers", async () => {
    const relay = interceptorEntry('relay', async (ctx) => {
      const upstream = proxy.router.pick(undefined);
      const reply = await callRuntime(upstream, ctx.method.path, (await ctx.requestBytes()) ?? Buffer.alloc(0), 1000);
      ctx.respond({ messages: reply.body ? [reply.body] : [], trailers: reply.trailers });
    });
    proxy = await startTestProxy({ entries: [relay] });
    proxy.runtime.on('ImageStatus', { respond: Buffer.from([0x0a, 0x00]), trailers: { 'x-from': 'runtime' } });
    const ok = await proxy.client().unary('/runtime.v1.ImageService/ImageStatus', Buffer.alloc(0));
    expect(ok.status.code).toBe(grpc.status.OK);
    expect(ok.response?.toString('hex')).toBe('0a00');
    expect(ok.status.metadata.get('x-from')).toEqual(['runtime']);
    proxy.runtime.on('ImageStatus', { fail: { code: grpc.status.NOT_FOUND, message: 'no such image', trailers: { 'x-why': 'gone' } } });
    const missing = await proxy.client().unary('/runtime.v1.ImageService/ImageStatus', Buffer.alloc(0));
    expect(missing.status.code).toBe(grpc.status.NOT_FOUND);
    expect(missing.status.details).toBe('no such image');
    expect(missing.status.metadata.get('x-why')).toEqual(['gone']);
  });

  test("its own errors carry their code in the cri-proxy-error trailer; a runtime's error, relayed, never does", async () => {
    const deny = interceptorEntry('deny', (ctx, next) =>
      ctx.method.name === 'PullImage' ? Promise.reject(new ProxyError('POLICY_DENIED', 'cri-proxy: denied')) : next(),
    );
    proxy = await startTestProxy({ entries: [deny] });
    const denied = await proxy.client().unary('/runtime.v1.ImageService/PullImage', Buffer.alloc(0));
    expect(denied.status.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(denied.status.metadata.get(PROXY_ERROR_TRAILER)).toEqual(['POLICY_DENIED']);

    proxy.runtime.on('StopContainer', { fail: { code: grpc.status.UNKNOWN, message: 'ttrpc: closed' } });
    const relayed = await proxy.client().unary('/runtime.v1.RuntimeService/StopContainer', Buffer.alloc(0));
    expect(relayed.status).toMatchObject({ code: grpc.status.UNKNOWN, details: 'ttrpc: closed' });
    expect(relayed.status.metadata.get(PROXY_ERROR_TRAILER)).toEqual([]);

    await proxy.runtime.stop();
    const down = await proxy.client().unary('/runtime.v1.RuntimeService/StopContainer', Buffer.alloc(0));
    expect(down.status.code).toBe(grpc.status.UNAVAILABLE);
    expect(down.status.metadata.get(PROXY_ERROR_TRAILER)).toEqual(['UPSTREAM_UNAVAILABLE']);
  });

  test('a replaced request reaches the runtime; interceptors still see the client’s', async () => {
    const seen: unknown[] = [];
    const rewrite = interceptorEntry('rewrite', async (ctx, next) => {
      const request = await ctx.request();
      ctx.replaceRequest(encodeMessage('runtime.v1.RunPodSandboxRequest', { ...request, runtime_handler: 'kata' }));
      return next();
    });
    const observe = interceptorEntry('observe', async (ctx, next) => {
      seen.push(await ctx.request());
      return next();
    });
    proxy = await startTestProxy({ entries: [rewrite, observe] });
    const sent = encodeMessage('runtime.v1.RunPodSandboxRequest', { runtime_handler: 'kata-fast', config: { metadata: { name: 'p' } } });
    const result = await proxy.client().unary('/runtime.v1.RuntimeService/RunPodSandbox', sent);
    expect(result.status.code).toBe(grpc.status.OK);
    const received = decodeMessage(
      'runtime.v1.RunPodSandboxRequest',
      proxy.runtime.lastCall('RunPodSandbox')?.requestBytes ?? Buffer.alloc(0),
    );
    expect(received).toMatchObject({ runtime_handler: 'kata', config: { metadata: { name: 'p' } } });
    expect(seen).toEqual([expect.objectContaining({ runtime_handler: 'kata-fast' })]);
  });

  test('a stream it writes itself, paced by the client', async () => {
    const event = encodeMessage('runtime.v1.ContainerEventResponse', { container_id: 'c' });
    const stream = interceptorEntry('stream', async (ctx) => {
      const out = ctx.openResponse();
      for (let i = 0; i < 5000 && !out.closed; i++) if (!out.write(event)) await out.drained();
      out.end();
    });
    proxy = await startTestProxy({ entries: [stream] });
    const { messages, status } = await collectStream(
      proxy.client().serverStream('/runtime.v1.RuntimeService/GetContainerEvents', Buffer.alloc(0)),
    );
    expect(status.code).toBe(grpc.status.OK);
    expect(messages).toHaveLength(5000);
    expect(proxy.runtime.calls).toHaveLength(0);
  });
});

test('a stream it writes itself ends CANCELLED when the client goes away', async () => {
  let seen: number | undefined;
  const stream = interceptorEntry('stream', async (ctx) => {
    const out = ctx.openResponse();
    const event = encodeMessage('runtime.v1.ContainerEventResponse', { container_id: 'c' });
    while (!out.closed) if (!out.write(event)) await out.drained();
    seen = ctx.outcome?.code;
  });
  const proxy = await startTestProxy({ entries: [stream] });
  const call = proxy.client().serverStream('/runtime.v1.RuntimeService/GetContainerEvents', Buffer.alloc(0));
  call.on('error', () => undefined);
  await new Promise<void>((resolve) => call.once('data', () => resolve()));
  call.cancel();
  await waitFor(() => seen !== undefined);
  expect(seen).toBe(grpc.status.CANCELLED);
  await proxy.close();
});

describe("the proxy's own streaming calls", () => {
  let proxy: TestProxy;
  afterEach(async () => {
    await proxy.close();
  });

  test('deliver every message in order to a slow consumer, then the status', async () => {
    proxy = await startTestProxy();
    proxy.runtime.on('GetContainerEvents', {
      stream: function* () {
        for (let i = 0; i < 2000; i++) yield encodeMessage('runtime.v1.ContainerEventResponse', { container_id: String(i) });
      },
      trailers: { 'x-end': 'yes' },
    });
    const upstream = proxy.router.pick(undefined);
    const ids: unknown[] = [];
    const end = await streamRuntime(upstream, '/runtime.v1.RuntimeService/GetContainerEvents', Buffer.alloc(0), {}, async (m) => {
      ids.push(decodeMessage('runtime.v1.ContainerEventResponse', m)['container_id']);
      if (ids.length % 100 === 0) await new Promise((resolve) => setImmediate(resolve));
    });
    expect(end.code).toBe(grpc.status.OK);
    expect(ids).toEqual(Array.from({ length: 2000 }, (_, i) => String(i)));
    expect(end.trailers).toEqual(expect.arrayContaining(['x-end', 'yes']));
  });

  test('end CANCELLED when aborted, and the runtime sees the cancellation', async () => {
    proxy = await startTestProxy();
    proxy.runtime.on('GetContainerEvents', { delayMs: Infinity });
    const upstream = proxy.router.pick(undefined);
    const controller = new AbortController();
    const ended = streamRuntime(
      upstream,
      '/runtime.v1.RuntimeService/GetContainerEvents',
      Buffer.alloc(0),
      { signal: controller.signal },
      () => undefined,
    );
    await waitFor(() => proxy.runtime.lastCall('GetContainerEvents') !== undefined);
    controller.abort();
    expect((await ended).code).toBe(grpc.status.CANCELLED);
    await waitFor(() => proxy.runtime.lastCall('GetContainerEvents')?.cancelled === true);
  });

  test('end UNAVAILABLE naming the runtime when it cannot be reached', async () => {
    proxy = await startTestProxy({ runtimeDown: true });
    const upstream = proxy.router.pick(undefined);
    const end = await streamRuntime(upstream, '/runtime.v1.RuntimeService/GetContainerEvents', Buffer.alloc(0), {}, () => undefined);
    expect(end.code).toBe(grpc.status.UNAVAILABLE);
    expect(end.message).toContain(proxy.runtime.socketPath);
  });
});

describe('watches at shutdown', () => {
  test('a watch stream ends UNAVAILABLE when the proxy stops, instead of holding the stop for the whole grace', async () => {
    const endless = interceptorEntry('endless', async (ctx) => {
      const out = ctx.openResponse();
      const event = encodeMessage('runtime.v1.ContainerEventResponse', { container_id: 'own' });
      while (!out.closed) if (!out.write(event)) await out.drained();
    });
    const proxy = await startTestProxy({ entries: [endless] });
    const own = collectStream(proxy.client().serverStream('/runtime.v1.RuntimeService/GetContainerEvents', Buffer.alloc(0)));
    await waitFor(() => proxy.server.activeCalls === 1);
    // The grace is far longer than this test may take: the stop must not wait for it.
    await proxy.server.close(600_000);
    const { status } = await own;
    expect(status.code).toBe(grpc.status.UNAVAILABLE);
    expect(status.details).toContain('shutting down');
    await proxy.close();
  });

  test('a forwarded watch is cut short too, and the runtime sees its call cancelled', async () => {
    const proxy = await startTestProxy();
    proxy.runtime.on('GetContainerEvents', { delayMs: Infinity });
    const forwarded = collectStream(proxy.client().serverStream('/runtime.v1.RuntimeService/GetContainerEvents', Buffer.alloc(0)));
    await waitFor(() => proxy.runtime.lastCall('GetContainerEvents') !== undefined);
    await proxy.server.close(600_000);
    expect((await forwarded).status.code).toBe(grpc.status.UNAVAILABLE);
    await waitFor(() => proxy.runtime.lastCall('GetContainerEvents')?.cancelled === true);
    await proxy.close();
  });
});
