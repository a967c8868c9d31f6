/** A proxy with the routing interceptor in front of two fake CRI runtimes, `containerd` (the default) and `crio`. */
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { routingConfigSchema } from '../../src/interceptors/routing/config';
import { createRoutingInterceptor } from '../../src/interceptors/routing/interceptor';
import { silentLogger } from '../../src/log';
import type { ChainEntry } from '../../src/chain/chain';
import { Downstream } from '../../src/chain/own-call';
import { decodeMessage, encodeMessage, type DecodedMessage } from '../../src/messages/codec';
import { methodTable } from '../../src/chain/method-table';
import type { Router } from '../../src/proxy/router';
import { FakeCri } from './fake-cri';
import type { FakeRuntime } from './fake-runtime';
import { startTestProxy, type RawClient, type TestProxy } from './proxy-harness';

const BACKENDS = ['containerd', 'crio'] as const;
export type Backend = (typeof BACKENDS)[number];

/** The rules the routing tests share: kata handlers, a namespace, an annotation and a label send pods to crio. */
const ROUTING_CONFIG = {
  rules: [
    { name: 'kata', backend: 'crio', match: { runtimeHandlers: ['kata-*'] } },
    { name: 'sandboxed', backend: 'crio', match: { namespaces: ['sandboxed', 'untrusted-*'] } },
    { name: 'opt-in', backend: 'crio', match: { annotations: { 'cri-proxy.io/backend': 'crio' } } },
    { name: 'gpu', backend: 'crio', match: { labels: { accel: 'gpu-*' } } },
  ],
  handlers: { crio: { 'kata-fast': 'kata' } },
  events: { reconnectInitialMs: 5, reconnectMaxMs: 50 },
};

export interface Reply {
  readonly code: grpc.status;
  readonly details: string;
  readonly response: DecodedMessage | undefined;
  /** The response message as it came. */
  readonly bytes: Buffer | undefined;
  readonly trailers: grpc.Metadata;
}

export interface RoutingProxy {
  readonly proxy: TestProxy;
  readonly cri: Readonly<Record<Backend, FakeCri>>;
  readonly runtime: Readonly<Record<Backend, FakeRuntime>>;
  /** The registry of the routing interceptor running now (a fresh one after each restart). */
  registry(): Registry;
  readonly client: RawClient;
  call(method: string, request?: Record<string, unknown>, metadata?: Readonly<Record<string, string>>): Promise<Reply>;
  close(): Promise<void>;
}

const byName = new Map(methodTable.map((m) => [m.name, m]));

export function methodOf(name: string): (typeof methodTable)[number] {
  const method = byName.get(name);
  if (method === undefined) throw new Error(`no CRI method ${name}`);
  return method;
}

interface RoutingProxyOptions {
  readonly config?: Record<string, unknown>;
  /** Entries after routing (the image policy, say), built with the router. */
  readonly after?: (router: Router) => readonly ChainEntry[];
  /** Entries before routing (observers), built with the router. */
  readonly before?: (router: Router) => readonly ChainEntry[];
  /** Paths outside CRI v1 both fake runtimes serve (as unary methods). */
  readonly extraMethods?: readonly string[];
}

export async function startRoutingProxy(options: RoutingProxyOptions = {}): Promise<RoutingProxy> {
  let registry = new Registry();
  const config = routingConfigSchema.parse(options.config ?? ROUTING_CONFIG);
  const proxy = await startTestProxy({
    backends: BACKENDS,
    ...(options.extraMethods ? { extraMethods: options.extraMethods } : {}),
    entriesFor: (router) => {
      registry = new Registry();
      const downstream = new Downstream(router, 'routing');
      const routing = createRoutingInterceptor(config, { name: 'routing', log: silentLogger, registry, router, downstream });
      return [
        ...(options.before?.(router) ?? []),
        { interceptor: routing, onError: 'failClosed', methods: undefined, downstream },
        ...(options.after?.(router) ?? []),
      ];
    },
  });
  const runtimeOf = (name: Backend): FakeRuntime => {
    const runtime = proxy.runtimes.get(name);
    if (runtime === undefined) throw new Error(`no runtime ${name}`);
    return runtime;
  };
  const runtime = { containerd: runtimeOf('containerd'), crio: runtimeOf('crio') };
  const cri = {
    containerd: new FakeCri(runtime.containerd, 'containerd', ['', 'runc']),
    crio: new FakeCri(runtime.crio, 'crio', ['', 'kata']),
  };
  const client = proxy.client();
  return {
    proxy,
    cri,
    runtime,
    registry: () => registry,
    client,
    call: (method, request = {}, metadata = {}) => callVia(client, method, request, metadata),
    close: async () => {
      for (const fake of Object.values(cri)) fake.endEvents();
      await proxy.close();
    },
  };
}

export async function callVia(
  client: RawClient,
  method: string,
  request: Record<string, unknown> = {},
  metadata: Readonly<Record<string, string>> = {},
  options: { readonly waitForReady?: boolean } = {},
): Promise<Reply> {
  const info = methodOf(method);
  // waitForReady: wait for the proxy to come (back) rather than fail at once while it cannot be reached.
  const md = new grpc.Metadata({ waitForReady: options.waitForReady ?? false });
  for (const [key, value] of Object.entries(metadata)) md.set(key, value);
  const result = await client.unary(info.path, encodeMessage(info.requestType ?? '', request), md);
  const bytes = result.response;
  return {
    code: result.status.code,
    details: result.status.details,
    response: bytes === undefined ? undefined : decodeMessage(info.responseType ?? '', bytes),
    bytes,
    trailers: result.status.metadata,
  };
}

/** What the test expects of an OK call: its decoded response. */
export function ok(reply: Reply): DecodedMessage {
  if (reply.code !== grpc.status.OK) throw new Error(`expected OK, got ${reply.code}: ${reply.details}`);
  return reply.response ?? {};
}

/** Names of the methods `runtime` was called with since `from` (an index into its calls). */
export function methodsCalled(runtime: FakeRuntime, from = 0): string[] {
  return runtime.calls.slice(from).map((c) => c.name);
}

export function sandboxConfig(name: string, namespace: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { metadata: { name, namespace, uid: `${namespace}-${name}-uid`, attempt: 0 }, ...extra };
}
