import { backendCalls } from '../../src/interceptors/routing/runtime-calls';
import { metadataForBackends } from '../../src/chain/own-call';
import { silentLogger } from '../../src/log';
import { Metadata } from '../../src/chain/metadata';
import { Router } from '../../src/proxy/router';
import { Upstream } from '../../src/proxy/upstream';
import { fakeCallContext } from '../support/fake-context';

test('routing’s own calls carry the client’s metadata without its transport headers, with what interceptors set', () => {
  const ctx = fakeCallContext('/runtime.v1.RuntimeService/ListContainers');
  const fields = [
    ':path',
    '/runtime.v1.RuntimeService/ListContainers',
    'content-type',
    'application/grpc',
    'te',
    'trailers',
    'grpc-timeout',
    '2S',
    'grpc-encoding',
    'identity',
    'grpc-accept-encoding',
    'identity,gzip',
    'user-agent',
    'kubelet',
    'x-request-id',
    'r-1',
    'traceparent',
    'kubelet-span',
    'x-blob-bin',
    'AAE=',
    'x-request-id',
    'r-2',
  ];
  const withMetadata = { ...ctx, metadata: new Metadata(fields) };
  expect(metadataForBackends(withMetadata)).toEqual([
    'x-request-id',
    'r-1',
    'traceparent',
    'kubelet-span',
    'x-blob-bin',
    'AAE=',
    'x-request-id',
    'r-2',
  ]);
  ctx.upstreamMetadata.set('traceparent', 'proxy-span');
  expect(metadataForBackends(withMetadata)).toEqual([
    'x-request-id',
    'r-1',
    'x-blob-bin',
    'AAE=',
    'x-request-id',
    'r-2',
    'traceparent',
    'proxy-span',
  ]);
});

describe('the backend calls routing makes never reject', () => {
  const upstream = new Upstream({
    name: 'crio',
    socketPath: '/nonexistent/crio.sock',
    connectTimeoutMs: 50,
    maxMessageBytes: 1024,
    log: silentLogger,
  });
  const router = new Router([upstream], 'crio');
  const { call, stream } = backendCalls(router);
  afterAll(() => router.close());

  test('a runtime that cannot be reached answers UNAVAILABLE naming it', async () => {
    const reply = await call('crio', '/runtime.v1.RuntimeService/Version', Buffer.alloc(0), [], Date.now() + 5000);
    expect([reply.code, reply.body, reply.trailers]).toEqual([14, undefined, []]);
    expect(reply.message).toMatch(/^runtime "crio" at unix:\/\/\/nonexistent\/crio\.sock is unavailable/);
    const ended = await stream(
      'crio',
      '/runtime.v1.RuntimeService/GetContainerEvents',
      Buffer.alloc(0),
      [],
      undefined,
      new AbortController().signal,
      () => undefined,
    );
    expect(ended.code).toBe(14);
  });

  test('a backend that is not configured, and a deadline already past, answer without calling anything', async () => {
    expect(await call('kata', '/runtime.v1.RuntimeService/Version', Buffer.alloc(0), [], undefined)).toEqual({
      code: 14,
      message: 'no backend named "kata" is configured',
      trailers: [],
    });
    const late = await call('crio', '/runtime.v1.RuntimeService/Version', Buffer.alloc(0), [], Date.now() - 1);
    expect([late.code, late.message]).toEqual([4, 'the deadline expired before /runtime.v1.RuntimeService/Version reached runtime "crio"']);
  });
});
