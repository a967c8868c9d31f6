import { join } from 'node:path';
import { InterceptorTypes } from '../../src/chain/interceptor-types';
import { ConfigError, loadConfigFile, parseConfig } from '../../src/config/load';
import { builtinInterceptorTypes } from '../../src/interceptors';
import { Registry } from 'prom-client';
import { Downstream } from '../../src/chain/own-call';
import { routingConfigSchema } from '../../src/interceptors/routing/config';
import { silentLogger } from '../../src/log';
import { Router } from '../../src/proxy/router';
import { Upstream } from '../../src/proxy/upstream';
import { sample } from '../support/metric-samples';
import { eventually } from '../support/wait';

const types = new InterceptorTypes(builtinInterceptorTypes);

const BACKENDS = `backends:
  - { name: containerd, endpoint: /run/containerd/containerd.sock, default: true }
  - { name: crio, endpoint: /run/crio/crio.sock }
`;

function withRouting(config: string): string {
  return `${BACKENDS}interceptors:\n  - name: routing\n    type: routing\n    config:\n${config
    .split('\n')
    .map((l) => (l === '' ? l : `      ${l}`))
    .join('\n')}\n`;
}

function problems(yaml: string): [string, string][] {
  try {
    parseConfig(yaml, 'test.yaml', types);
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => [i.path, i.message]);
    throw err;
  }
  throw new Error('config was accepted');
}

test('config/routing.yaml validates to the documented shape', () => {
  const config = loadConfigFile(join(__dirname, '../../config/routing.yaml'), types);
  expect(config.backends.map((b) => [b.name, b.default])).toEqual([
    ['containerd', true],
    ['crio', false],
  ]);
  // The node chain: observers and audit, then routing, then the image policy that depends on its choice.
  expect(config.interceptors.map((i) => i.type)).toEqual(['tracing', 'metrics', 'audit', 'routing', 'image-policy']);
  const routing = config.interceptors.find((i) => i.type === 'routing');
  expect(routing).toMatchObject({ name: 'routing', type: 'routing', onError: 'failClosed' });
  expect(routing?.methods).toBeUndefined();
  expect(routing?.config).toEqual({
    rules: [
      { name: 'runtime-class', backend: 'crio', match: { runtimeHandlers: ['crio', 'kata-*'] } },
      { name: 'sandboxed-namespaces', backend: 'crio', match: { namespaces: ['sandboxed', 'untrusted-*'] } },
      { name: 'opt-in', backend: 'crio', match: { annotations: { 'cri-proxy.io/backend': 'crio' } } },
    ],
    handlers: { crio: { crio: '', 'kata-fast': 'kata' } },
    ownership: { cacheSize: 10000, rebuildTimeoutMs: 10000, lookupTimeoutMs: 2000 },
    images: { pullOnCreate: true, credentialCacheSize: 1000 },
    maxMergedAnswerBytes: 16777216,
    events: { reconnectInitialMs: 250, reconnectMaxMs: 30000, subscriberBufferMessages: 1024, subscriberBufferBytes: 16777216 },
  });
});

test('an empty routing config gets every default', () => {
  const config = parseConfig(`${BACKENDS}interceptors: [{ name: r, type: routing }]\n`, 't.yaml', types);
  expect(config.interceptors[0]?.config).toEqual({
    rules: [],
    handlers: {},
    ownership: { cacheSize: 10000, rebuildTimeoutMs: 10000, lookupTimeoutMs: 2000 },
    images: { pullOnCreate: true, credentialCacheSize: 1000 },
    maxMergedAnswerBytes: 16777216,
    events: { reconnectInitialMs: 250, reconnectMaxMs: 30000, subscriberBufferMessages: 1024, subscriberBufferBytes: 16777216 },
  });
});

const prefix = 'interceptors[0].config';

test.each<[string, string, string, RegExp]>([
  [
    'a rule naming an unknown backend',
    'rules: [{ backend: kata, match: { namespaces: [x] } }]',
    `${prefix}.rules[0].backend`,
    /no backend named "kata" \(configured backends: containerd, crio\)/,
  ],
  ['handlers for an unknown backend', 'handlers: { gvisor: { runsc: "" } }', `${prefix}.handlers.gvisor`, /no backend named "gvisor"/],
  ['a rule without criteria', 'rules: [{ backend: crio, match: {} }]', `${prefix}.rules[0].match`, /at least one of runtimeHandlers/],
  [
    'a misspelt criterion',
    'rules: [{ backend: crio, match: { runtimeHandler: [kata] } }]',
    `${prefix}.rules[0].match.runtimeHandler`,
    /unknown key; expected one of: runtimeHandlers, namespaces, labels, annotations/,
  ],
  [
    'an empty handler list',
    'rules: [{ backend: crio, match: { runtimeHandlers: [] } }]',
    `${prefix}.rules[0].match.runtimeHandlers`,
    /at least one handler/,
  ],
  [
    'an empty namespace',
    'rules: [{ backend: crio, match: { namespaces: [""] } }]',
    `${prefix}.rules[0].match.namespaces[0]`,
    /must not be empty/,
  ],
  ['an empty label map', 'rules: [{ backend: crio, match: { labels: {} } }]', `${prefix}.rules[0].match.labels`, /at least one key/],
  [
    'a label value that is not a string',
    'rules: [{ backend: crio, match: { labels: { a: 1 } } }]',
    `${prefix}.rules[0].match.labels.a`,
    /string/,
  ],
  ['a rule without a backend', 'rules: [{ match: { namespaces: [x] } }]', `${prefix}.rules[0].backend`, /required/],
  [
    'duplicate rule names',
    'rules: [{ name: a, backend: crio, match: { namespaces: [x] } }, { name: a, backend: crio, match: { namespaces: [y] } }]',
    `${prefix}.rules[1].name`,
    /duplicate rule name "a" \(also rules\[0\]\)/,
  ],
  ['a handler name that is not a string', 'handlers: { crio: { kata: 1 } }', `${prefix}.handlers.crio.kata`, /string/],
  ['a cache too small', 'ownership: { cacheSize: 1 }', `${prefix}.ownership.cacheSize`, /16/],
  ['a fractional timeout', 'ownership: { lookupTimeoutMs: 1.5 }', `${prefix}.ownership.lookupTimeoutMs`, /int/i],
  [
    'back-off max below its start',
    'events: { reconnectInitialMs: 1000, reconnectMaxMs: 10 }',
    `${prefix}.events.reconnectMaxMs`,
    /not be smaller/,
  ],
  ['an unknown section', 'cache: { size: 1 }', `${prefix}.cache`, /unknown key/],
])('%s is reported at its path', (_name, config, path, message) => {
  const found = problems(withRouting(config));
  expect(found.map(([p]) => p)).toEqual([path]);
  expect(found[0]?.[1]).toMatch(message);
});

test('every unknown backend is reported at once', () => {
  const found = problems(
    withRouting(
      'rules:\n  - { backend: a, match: { namespaces: [x] } }\n  - { backend: b, match: { namespaces: [y] } }\nhandlers: { c: {} }',
    ),
  );
  expect(found.map(([p]) => p)).toEqual([`${prefix}.rules[0].backend`, `${prefix}.rules[1].backend`, `${prefix}.handlers.c`]);
});

test('a rule naming a backend the file defines is accepted', () => {
  const yaml = `backends: [{ name: only, endpoint: /run/a.sock }]\ninterceptors: [{ name: r, type: routing, config: { rules: [{ backend: only, match: { namespaces: [x] } }] } }]\n`;
  expect(() => parseConfig(yaml, 't.yaml', types)).not.toThrow();
});

test('an image policy before routing is rejected: it would check images on the wrong backend', () => {
  const yaml = `${BACKENDS}interceptors:
  - { name: images, type: image-policy, config: { defaultAction: allow, rules: [] } }
  - { name: routing, type: routing }
`;
  expect(problems(yaml)).toEqual([
    [
      'interceptors[0].type',
      'must come after the routing entry "routing" (interceptors[1]): the image policy checks images on the backend routing picks',
    ],
  ]);
  const ordered = `${BACKENDS}interceptors:
  - { name: routing, type: routing }
  - { name: images, type: image-policy, config: { defaultAction: allow, rules: [] } }
`;
  expect(() => parseConfig(ordered, 't.yaml', types)).not.toThrow();
});

test('a routing entry limited to some methods is rejected: every call needs routing', () => {
  const yaml = `${BACKENDS}interceptors: [{ name: r, type: routing, methods: [RunPodSandbox] }]\n`;
  expect(problems(yaml)).toEqual([['interceptors[0].methods', 'a routing entry must see every call; remove "methods"']]);
});

test('the type builds a running interceptor from a validated config, which closes cleanly', async () => {
  const type = types.get('routing');
  const upstreams = ['containerd', 'crio'].map(
    (name) =>
      new Upstream({ name, socketPath: `/nonexistent/${name}.sock`, connectTimeoutMs: 10, maxMessageBytes: 1024, log: silentLogger }),
  );
  const router = new Router(upstreams, 'containerd');
  const registry = new Registry();
  const deps = { name: 'routing', log: silentLogger, registry, router };
  // Its pulls for kubelet go through the chain: without a way to make them, it is not built.
  expect(() => type?.create(routingConfigSchema.parse({}), deps)).toThrow(/deps.downstream/);
  const interceptor = type?.create(routingConfigSchema.parse({}), { ...deps, downstream: new Downstream(router, 'routing') });
  expect(interceptor?.name).toBe('routing');
  // The start-up rebuild asked both backends (neither is there) and says so.
  await eventually(
    async () => (await sample(registry, 'cri_proxy_routing_ownership_rebuilds_total', { backend: 'crio', result: 'failed' })) === 1,
  );
  expect(await sample(registry, 'cri_proxy_routing_ownership_rebuilds_total', { backend: 'containerd', result: 'failed' })).toBe(1);
  await interceptor?.close?.();
  router.close();
});
