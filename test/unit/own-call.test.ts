import type { Backend, Backends, CallOptions, UnaryReply } from '../../src/chain/backends';
import { Chain, type ChainEntry } from '../../src/chain/chain';
import { lookupMethod } from '../../src/chain/method-table';
import { Downstream, ownCallsOf } from '../../src/chain/own-call';
import type { CallContext, Interceptor, Next } from '../../src/chain/types';
import { ProxyError } from '../../src/errors';
import { decodeMessage, encodeMessage } from '../../src/messages/codec';
import { fakeCallContext } from '../support/fake-context';

const PULL = lookupMethod('/runtime.v1.ImageService/PullImage');
const CREATE = '/runtime.v1.RuntimeService/CreateContainer';
const pullRequest = encodeMessage('runtime.v1.PullImageRequest', { image: { image: 'registry.example/app:1' } });
const pulled = encodeMessage('runtime.v1.PullImageResponse', { image_ref: 'sha256:abc' });

interface Sent {
  readonly backend: string;
  readonly path: string;
  readonly request: Buffer;
  readonly options: CallOptions;
}

/** Backends that answer every call with `reply` (or fail as unreachable), recording what was sent. */
function backends(reply: UnaryReply | Error = { code: 0, message: '', body: pulled, trailers: [] }): { router: Backends; sent: Sent[] } {
  const sent: Sent[] = [];
  const backend = (name: string): Backend => ({
    name,
    status: { up: true, lastError: undefined, lastErrorAt: undefined },
    call: (path, request, options) => {
      sent.push({ backend: name, path, request, options: typeof options === 'number' ? { timeoutMs: options } : options });
      return reply instanceof Error ? Promise.reject(reply) : Promise.resolve(reply);
    },
    stream: () => Promise.reject(new Error('no streams here')),
    unavailable: (cause) => new ProxyError('UPSTREAM_UNAVAILABLE', `runtime "${name}" is unavailable: ${String(cause)}`),
  });
  const all = new Map(['a', 'b'].map((n) => [n, backend(n)]));
  const router: Backends = {
    defaultBackend: 'a',
    upstreams: all.values(),
    get: (name) => all.get(name),
    pick: (name) => all.get(name ?? 'a') ?? (all.get('a') as Backend),
  };
  return { router, sent };
}

function recorder(name: string, log: string[], act?: (ctx: CallContext) => void | Promise<void>): Interceptor {
  return {
    name,
    async intercept(ctx: CallContext, next: Next) {
      log.push(`${name}:${ctx.method.name}${ctx.onBehalfOf === undefined ? '' : ` for ${ctx.onBehalfOf.call.method.name}`}`);
      await act?.(ctx);
      return next();
    },
  };
}

const entry = (interceptor: Interceptor, downstream?: Downstream, methods?: string[]): ChainEntry => ({
  interceptor,
  onError: 'failClosed',
  methods,
  downstream,
});

/** A chain [before, maker, after…] whose maker's downstream is returned. */
function chainWith(router: Backends, after: ChainEntry[], log: string[] = []): Downstream {
  const downstream = new Downstream(router, 'maker');
  new Chain(
    [entry(recorder('before', log)), entry(recorder('maker', log), downstream), ...after],
    () => Promise.resolve(),
    () => undefined,
  );
  return downstream;
}

const parent = (): CallContext => fakeCallContext(CREATE, { 'x-request-id': 'r-1', 'user-agent': 'kubelet', 'grpc-timeout': '5S' });

describe('calls an interceptor makes on a client’s behalf', () => {
  test('pass the entries after their maker (never those before), then reach the backend named', async () => {
    const log: string[] = [];
    const { router, sent } = backends();
    const downstream = chainWith(
      router,
      [entry(recorder('policy', log)), entry(recorder('create-only', log), undefined, ['CreateContainer'])],
      log,
    );
    const client = parent();
    const result = await downstream.call(client, { method: PULL, request: pullRequest, backend: 'b' });
    expect(log).toEqual(['policy:PullImage for CreateContainer']);
    expect(result).toEqual({ outcome: { code: 0, message: '', fromProxy: false }, body: pulled, backend: 'b' });
    expect(sent.map((s) => [s.backend, s.path, s.request])).toEqual([['b', PULL.path, pullRequest]]);
    // The client's metadata goes along, without its transport headers.
    expect(sent[0]?.options.metadata).toEqual(['x-request-id', 'r-1']);
    // Reported on the client's call, as the entries after its maker saw it.
    const [own] = ownCallsOf(client);
    expect([own?.method.name, own?.backend, own?.onBehalfOf?.by, own?.response()]).toEqual([
      'PullImage',
      'b',
      'maker',
      { image_ref: 'sha256:abc' },
    ]);
    expect(await own?.request()).toEqual({ image: { image: 'registry.example/app:1' } });
  });

  test('an entry after the maker refusing it: its status is the outcome, nothing reaches the backend', async () => {
    const { router, sent } = backends();
    const deny = recorder('policy', [], () => {
      throw new ProxyError('POLICY_DENIED', 'image "registry.example/app:1" denied');
    });
    const result = await chainWith(router, [entry(deny)]).call(parent(), { method: PULL, request: pullRequest, backend: 'b' });
    expect(result.outcome).toEqual({
      code: 7,
      message: 'image "registry.example/app:1" denied',
      fromProxy: true,
      errorCode: 'POLICY_DENIED',
    });
    expect(sent).toEqual([]);
  });

  test('an entry may answer it, replace its request or add metadata, as for a client’s call', async () => {
    const { router, sent } = backends();
    const rewrite = recorder('rewrite', [], async (ctx) => {
      await ctx.requestBytes();
      ctx.replaceRequest(encodeMessage('runtime.v1.PullImageRequest', { image: { image: 'mirror.example/app:1' } }));
      ctx.upstreamMetadata.set('traceparent', 'tp');
    });
    await chainWith(router, [entry(rewrite)]).call(parent(), { method: PULL, request: pullRequest, backend: 'a' });
    expect(decodeMessage('runtime.v1.PullImageRequest', sent[0]?.request ?? Buffer.alloc(0))).toEqual({
      image: { image: 'mirror.example/app:1' },
    });
    expect(sent[0]?.options.metadata).toEqual(['x-request-id', 'r-1', 'traceparent', 'tp']);

    const answering: Interceptor = {
      name: 'cache',
      intercept: (ctx) => {
        ctx.respond({ messages: [pulled] });
        return Promise.resolve();
      },
    };
    const answered = await chainWith(router, [entry(answering)]).call(parent(), { method: PULL, request: pullRequest, backend: 'a' });
    expect([answered.outcome.code, answered.body]).toEqual([0, pulled]);
    expect(sent).toHaveLength(1);
    // A runtime's answer relayed with its trailers: the status is theirs.
    const relaying: Interceptor = {
      name: 'relay',
      intercept: (ctx) => {
        ctx.respond({ messages: [], trailers: ['grpc-status', '5', 'grpc-message', 'image not found'] });
        return Promise.resolve();
      },
    };
    const relayed = await chainWith(router, [entry(relaying)]).call(parent(), { method: PULL, request: pullRequest, backend: 'a' });
    expect(relayed.outcome).toEqual({ code: 5, message: 'image not found', fromProxy: true });
  });

  test('a runtime that cannot be reached, or the client’s deadline gone: the outcome says so', async () => {
    const { router } = backends(new Error('connect ENOENT'));
    const unreachable = await chainWith(router, []).call(parent(), { method: PULL, request: pullRequest, backend: 'b' });
    expect(unreachable.outcome).toMatchObject({ code: 14, fromProxy: true, message: expect.stringContaining('connect ENOENT') as unknown });
    const expired = { ...parent(), deadline: Date.now() - 1 };
    const late = await chainWith(backends().router, []).call(expired, { method: PULL, request: pullRequest, backend: 'b' });
    expect(late.outcome).toMatchObject({ code: 4, errorCode: 'DEADLINE_EXCEEDED' });
  });

  test('only unary methods, only from an entry in a chain', async () => {
    const { router } = backends();
    await expect(new Downstream(router, 'loose').call(parent(), { method: PULL, request: pullRequest, backend: 'a' })).rejects.toThrow(
      /interceptor "loose" is in no chain/,
    );
    const stream = lookupMethod('/runtime.v1.RuntimeService/GetContainerEvents');
    await expect(chainWith(router, []).call(parent(), { method: stream, request: Buffer.alloc(0), backend: 'a' })).rejects.toThrow(
      /only unary methods/,
    );
  });
});
