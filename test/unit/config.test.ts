import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { parseHostPort, parseUnixAddress } from '../../src/config/address';
import { defineInterceptorType, InterceptorTypes, type InterceptorType } from '../../src/chain/interceptor-types';
import { builtinInterceptorTypes } from '../../src/interceptors';
import { ConfigError, DEFAULT_UPSTREAM, loadConfigFile, parseConfig, type ConfigOverrides } from '../../src/config/load';
import { defaultBackend, limitsSchema } from '../../src/config/schema';
import { LIMITS } from '../../src/proxy/limits';
import { formatPath, type ConfigIssue } from '../../src/config/issues';
import { GrpcStatus, ProxyError } from '../../src/errors';

const FIXTURES = join(__dirname, 'fixtures/config');
const ONE_BACKEND = 'backends: [{ name: containerd, endpoint: /run/containerd/containerd.sock }]\n';
const TWO_BACKENDS = `backends:
  - { name: a, endpoint: /run/a.sock, default: true }
  - { name: b, endpoint: /run/b.sock }
`;

// A small type so interceptor config errors can be traced to their path.
const testRules = defineInterceptorType({
  name: 'test-rules',
  schema: z.strictObject({
    rules: z.array(z.strictObject({ match: z.string(), action: z.enum(['allow', 'deny']) })).default([]),
    verbose: z.boolean().default(false),
  }),
  create: (_config, deps) => ({ name: deps.name, intercept: (_ctx, next) => next() }),
});
const types = new InterceptorTypes([...builtinInterceptorTypes, testRules]);

function issuesOf(yaml: string, overrides?: ConfigOverrides): ConfigIssue[] {
  try {
    parseConfig(yaml, 'test.yaml', types, overrides);
  } catch (err) {
    if (err instanceof ConfigError) return [...err.issues];
    throw err;
  }
  throw new Error('config was accepted');
}

/** A config value as JSON renders it: addresses as written. */
const asWritten = (value: unknown): unknown => JSON.parse(JSON.stringify(value)) as unknown;

const pathsOf = (yaml: string, overrides?: ConfigOverrides): string[] => issuesOf(yaml, overrides).map((i) => i.path);

describe('defaults', () => {
  test('a file with only a backend gets every default', () => {
    // Addresses and the socket mode are carried parsed; as JSON (and in config print) they read as written.
    expect(asWritten(parseConfig(ONE_BACKEND, 'test.yaml', types))).toEqual({
      listen: 'unix:///run/cri-proxy/cri-proxy.sock',
      socketMode: '0660',
      allowInsecureSocket: false,
      logLevel: 'info',
      maxMessageBytes: 16 * 1024 * 1024,
      shutdownGraceSeconds: 30,
      limits: Object.fromEntries(Object.entries(LIMITS).map(([key, spec]) => [key, spec.default])),
      http: { listen: '127.0.0.1:9464' },
      podStarts: { enabled: true, keep: 500, keepSlowest: 50, settleMs: 3000, maxStarting: 1000, ttlMs: 600_000 },
      backends: [{ name: 'containerd', endpoint: '/run/containerd/containerd.sock', default: true, connectTimeoutMs: 1000 }],
      interceptors: [],
    });
  });

  test('no file at all: a single default backend on containerd', () => {
    const cfg = loadConfigFile(undefined, types);
    expect(asWritten(cfg.backends)).toEqual([{ name: 'default', endpoint: DEFAULT_UPSTREAM, default: true, connectTimeoutMs: 1000 }]);
    expect(cfg.listen.written).toBe('unix:///run/cri-proxy/cri-proxy.sock');
  });

  test('addresses and the socket mode are parsed once, when the config is validated', () => {
    const cfg = parseConfig(
      `listen: unix:///run/p/cri.sock
socketMode: "0600"
http: { listen: "[::1]:9000" }
${ONE_BACKEND}`,
      't',
      types,
    );
    expect(cfg.listen.path).toBe('/run/p/cri.sock');
    expect(cfg.socketMode.mode).toBe(0o600);
    expect(cfg.http.listen.endpoint).toEqual({ host: '::1', port: 9000 });
    expect(cfg.backends[0]?.endpoint.path).toBe('/run/containerd/containerd.sock');
    expect(
      parseConfig(
        `http: { listen: "" }
${ONE_BACKEND}`,
        't',
        types,
      ).http.listen.endpoint,
    ).toBeUndefined();
  });

  test('every limit has its default, and only the keys LIMITS defines are accepted', () => {
    expect(limitsSchema.parse({})).toEqual(Object.fromEntries(Object.entries(LIMITS).map(([key, spec]) => [key, spec.default])));
    expect(
      pathsOf(`limits: { maxConnections: 0, idleTimeoutMs: 0, noSuchLimit: 1 }
${ONE_BACKEND}`),
    ).toEqual(['limits.maxConnections', 'limits.noSuchLimit']);
  });

  test('an empty file needs a backend', () => {
    expect(pathsOf('')).toEqual(['backends']);
  });

  test('several backends: the one marked default is the default', () => {
    expect(defaultBackend(parseConfig(TWO_BACKENDS, 't', types)).name).toBe('a');
    expect(parseConfig(TWO_BACKENDS, 't', types).backends.map((b) => b.default)).toEqual([true, false]);
  });
});

describe('flag overrides', () => {
  test.each<[string, string, ConfigOverrides, (c: ReturnType<typeof parseConfig>) => unknown, unknown]>([
    ['--listen', ONE_BACKEND, { listen: '/run/cri-proxy-test/p.sock' }, (c) => c.listen, '/run/cri-proxy-test/p.sock'],
    ['--log-level', ONE_BACKEND, { logLevel: 'debug' }, (c) => c.logLevel, 'debug'],
    ['--upstream, one backend', ONE_BACKEND, { upstream: '/x.sock' }, (c) => c.backends[0]?.endpoint, '/x.sock'],
    [
      '--upstream, default of two',
      TWO_BACKENDS,
      { upstream: '/x.sock' },
      (c) => c.backends.map((b) => b.endpoint),
      ['/x.sock', '/run/b.sock'],
    ],
    [
      '--upstream, file without backends',
      'logLevel: warn\n',
      { upstream: '/x.sock' },
      (c) => c.backends.map((b) => [b.name, b.endpoint, b.default]),
      [['default', '/x.sock', true]],
    ],
  ])('%s', (_name, yaml, overrides, pick, expected) => {
    expect(asWritten(pick(parseConfig(yaml, 'test.yaml', types, overrides)))).toEqual(expected);
  });

  test('flags without a file', () => {
    const cfg = loadConfigFile(undefined, types, { listen: 'unix:/run/cri-proxy-test/l.sock', upstream: '/tmp/u.sock', logLevel: 'error' });
    expect(asWritten([cfg.listen, cfg.logLevel, cfg.backends[0]?.endpoint])).toEqual([
      'unix:/run/cri-proxy-test/l.sock',
      'error',
      '/tmp/u.sock',
    ]);
  });

  test.each<[ConfigOverrides, string]>([
    [{ listen: 'tcp://0.0.0.0:1' }, '--listen'],
    [{ logLevel: 'loud' }, '--log-level'],
    [{ upstream: 'relative.sock' }, '--upstream'],
  ])('a bad flag value is reported under the flag: %j', (overrides, flag) => {
    expect(pathsOf(ONE_BACKEND, overrides)).toEqual([flag]);
  });
});

describe('example configs', () => {
  const dir = join(__dirname, '../../config');
  const files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f));

  test('there are examples', () => {
    expect(files).toEqual(expect.arrayContaining(['cri-proxy.yaml', 'minimal.yaml', 'multi-backend.yaml', 'routing.yaml']));
  });

  test.each(files)('%s validates', (file) => {
    expect(() => loadConfigFile(join(dir, file), types)).not.toThrow();
  });

  test('the documented example states exactly the defaults', () => {
    expect(loadConfigFile(join(dir, 'cri-proxy.yaml'), types)).toEqual(loadConfigFile(join(dir, 'minimal.yaml'), types));
  });
});

describe('invalid configs', () => {
  test.each<[string, string, string[]]>([
    ['unknown top-level key', `foo: 1\n${ONE_BACKEND}`, ['foo']],
    ['unknown nested key', 'backends:\n  - name: a\n    endpont: /a.sock\n', ['backends[0].endpoint', 'backends[0].endpont']],
    ['unknown http key', `http: { port: 1 }\n${ONE_BACKEND}`, ['http.port']],
    ['bad enum', `logLevel: verbose\n${ONE_BACKEND}`, ['logLevel']],
    ['bad onError', `${ONE_BACKEND}interceptors: [{ name: r, type: test-rules, onError: ignore }]\n`, ['interceptors[0].onError']],
    ['two defaults', `${TWO_BACKENDS}  - { name: c, endpoint: /c.sock, default: true }\n`, ['backends[2].default']],
    ['no default among several', 'backends: [{ name: a, endpoint: /a.sock }, { name: b, endpoint: /b.sock }]\n', ['backends']],
    [
      'duplicate backend names',
      'backends: [{ name: a, endpoint: /a.sock, default: true }, { name: a, endpoint: /b.sock }]\n',
      ['backends[1].name'],
    ],
    [
      'duplicate interceptor names',
      `${ONE_BACKEND}interceptors: [{ name: r, type: test-rules }, { name: r, type: test-rules }]\n`,
      ['interceptors[1].name'],
    ],
    ['tcp address', `listen: tcp://127.0.0.1:1234\n${ONE_BACKEND}`, ['listen']],
    ['relative path', 'backends: [{ name: a, endpoint: run/a.sock }]\n', ['backends[0].endpoint']],
    ['bad http listen', `http: { listen: "localhost" }\n${ONE_BACKEND}`, ['http.listen']],
    ['unquoted socket mode', `socketMode: 0660\n${ONE_BACKEND}`, ['socketMode']],
    ['non-octal socket mode', `socketMode: "0689"\n${ONE_BACKEND}`, ['socketMode']],
    ['message size 0', `maxMessageBytes: 0\n${ONE_BACKEND}`, ['maxMessageBytes']],
    ['message size 2^31', `maxMessageBytes: 2147483648\n${ONE_BACKEND}`, ['maxMessageBytes']],
    ['fractional timeout', 'backends: [{ name: a, endpoint: /a.sock, connectTimeoutMs: 1.5 }]\n', ['backends[0].connectTimeoutMs']],
    ['empty backends', 'backends: []\n', ['backends']],
    ['bad name', 'backends: [{ name: "a b", endpoint: /a.sock }]\n', ['backends[0].name']],
    [
      'bad method pattern',
      `${ONE_BACKEND}interceptors: [{ name: r, type: test-rules, methods: ["Run Pod"] }]\n`,
      ['interceptors[0].methods[0]'],
    ],
    ['unregistered type', `${ONE_BACKEND}interceptors: [{ name: x, type: nope }]\n`, ['interceptors[0].type']],
    ['document is a list', '- a\n', ['']],
    [
      'HTTP/2 flood limits out of range',
      `limits: { maxContinuationFrames: 0, maxSettingsEntries: 5, maxEmptyFrames: 0, maxResetStreams: 0, maxHeldResponseBytes: 1024 }\n${ONE_BACKEND}`,
      [
        'limits.maxContinuationFrames',
        'limits.maxSettingsEntries',
        'limits.maxEmptyFrames',
        'limits.maxResetStreams',
        'limits.maxHeldResponseBytes',
      ],
    ],
  ])('%s', (_name, yaml, paths) => {
    expect(pathsOf(yaml).sort()).toEqual([...paths].sort());
  });

  test('interceptor config errors carry the full path', () => {
    const issues = issuesOf(readFileSync(join(FIXTURES, 'interceptor-config-errors.yaml'), 'utf8'));
    expect(issues.map((i) => [i.path, i.line])).toEqual([
      ['interceptors[2].config.rules[0].action', 9],
      ['interceptors[2].config.colour', 10],
    ]);
  });

  test('every problem is reported at once, with its line', () => {
    const issues = issuesOf(readFileSync(join(FIXTURES, 'many-problems.yaml'), 'utf8'));
    expect(issues.map((i) => [i.path, i.line])).toEqual([
      ['foo', 1],
      ['logLevel', 2],
      ['backends', 3],
      ['backends[0].endpoint', 5],
      ['backends[1].name', 6],
      ['interceptors[0].type', 9],
    ]);
  });

  test('the error is a ProxyError whose message has one line per problem', () => {
    let caught: unknown;
    try {
      parseConfig(`foo: 1\nbar: 2\n${ONE_BACKEND}`, 'my.yaml', types);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ProxyError);
    const err = caught as ConfigError;
    expect([err.code, err.grpcStatus]).toEqual(['CONFIG_INVALID', GrpcStatus.INVALID_ARGUMENT]);
    const lines = err.message.split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^config my\.yaml: foo: /);
    expect(lines[1]).toMatch(/^config my\.yaml: bar: /);
  });

  test.each<[string, string, number]>([
    ['unclosed flow sequence', 'backends: [\n  { name: a\n', 3],
    ['bad indentation', 'backends:\n  - name: a\n endpoint: /a\n', 3],
    ['duplicate key', `logLevel: info\n${ONE_BACKEND}logLevel: debug\n`, 3],
  ])('YAML error (%s) reports its line', (_name, yaml, line) => {
    const issues = issuesOf(yaml);
    expect(issues.length).toBeGreaterThan(0);
    expect(issues.map((i) => i.line)).toContain(line);
    expect(issues.every((i) => i.path === '')).toBe(true);
  });

  test('an unreadable file is a ConfigError', () => {
    expect(() => loadConfigFile('/nonexistent/cri-proxy.yaml', types)).toThrow(ConfigError);
  });
});

describe('interceptor entries', () => {
  test('config is validated by its type and gets that type’s defaults', () => {
    const cfg = parseConfig(
      `${ONE_BACKEND}interceptors:
  - { name: r, type: test-rules, methods: [RunPodSandbox, "runtime.v1.ImageService/*"], config: { rules: [{ match: "*", action: deny }] } }
  - { name: s, type: test-rules, onError: failOpen, config: }
`,
      't',
      types,
    );
    expect(cfg.interceptors).toEqual([
      {
        name: 'r',
        type: 'test-rules',
        onError: 'failClosed',
        methods: ['RunPodSandbox', 'runtime.v1.ImageService/*'],
        config: { rules: [{ match: '*', action: 'deny' }], verbose: false },
      },
      { name: 's', type: 'test-rules', onError: 'failOpen', config: { rules: [], verbose: false } },
    ]);
  });

  test('the list of types is checked: names unique and kebab-case, a schema and create() each', () => {
    expect(types.names()).toEqual(['audit', 'image-policy', 'metrics', 'routing', 'test-rules', 'tracing']);
    const typeNamed = (name: string): InterceptorType => ({ ...testRules, name });
    expect(() => new InterceptorTypes([testRules, typeNamed('test-rules')])).toThrow(/"test-rules" is given twice/);
    expect(() => new InterceptorTypes([typeNamed('Bad_Name')])).toThrow(/kebab-case/);
    const noSchema = { ...testRules, schema: undefined } as unknown as InterceptorType;
    expect(() => new InterceptorTypes([noSchema])).toThrow(/no config schema/);
    const noCreate = { ...testRules, create: undefined } as unknown as InterceptorType;
    expect(() => new InterceptorTypes([noCreate])).toThrow(/no create\(\)/);
  });

  test('a type left out of the list is unknown to validation', () => {
    const issues = (() => {
      try {
        parseConfig(`${ONE_BACKEND}interceptors: [{ name: r, type: test-rules }]\n`, 't', new InterceptorTypes(builtinInterceptorTypes));
      } catch (err) {
        if (err instanceof ConfigError) return err.issues;
      }
      return [];
    })();
    expect(issues).toEqual([
      expect.objectContaining({
        path: 'interceptors[0].type',
        message: expect.stringContaining('unknown interceptor type "test-rules"') as string,
      }),
    ]);
  });
});

describe('the result is deep-frozen', () => {
  const cfg = parseConfig(
    `${TWO_BACKENDS}interceptors: [{ name: r, type: test-rules, config: { rules: [{ match: a, action: allow }] } }]\n`,
    't',
    types,
  );
  const mutations: [string, () => void][] = [
    ['top-level', () => Object.assign(cfg, { logLevel: 'debug' })],
    ['nested object', () => Object.assign(cfg.http, { listen: '' })],
    ['array', () => (cfg.backends as unknown as unknown[]).push({})],
    ['array element', () => Object.assign(cfg.backends[1] ?? {}, { default: true })],
    ['interceptor config', () => Object.assign((cfg.interceptors[0]?.config as { rules: object[] }).rules[0] ?? {}, { action: 'deny' })],
  ];
  test.each(mutations)('%s', (_name, mutate) => {
    expect(mutate).toThrow(TypeError);
  });
});

describe('addresses', () => {
  test.each([
    ['unix:///run/a.sock', '/run/a.sock'],
    ['unix:/run/a.sock', '/run/a.sock'],
    ['/run/a.sock', '/run/a.sock'],
    ['/run/with:colon.sock', '/run/with:colon.sock'],
  ])('parseUnixAddress(%j)', (input, path) => {
    expect(parseUnixAddress(input)).toBe(path);
  });

  test.each(['', 'tcp://127.0.0.1:1', 'run/a.sock', 'unix://run/a.sock', 'unix:run/a.sock', `/${'x'.repeat(107)}`])(
    'parseUnixAddress(%j) throws',
    (input) => {
      expect(() => parseUnixAddress(input)).toThrow(ProxyError);
    },
  );

  test.each([
    ['127.0.0.1:9464', '127.0.0.1', 9464],
    ['[::1]:0', '::1', 0],
    ['localhost:65535', 'localhost', 65535],
    ['metrics.example.com:80', 'metrics.example.com', 80],
  ])('parseHostPort(%j)', (input, host, port) => {
    expect(parseHostPort(input)).toEqual({ host, port });
  });

  test.each(['', '127.0.0.1', ':9464', '127.0.0.1:65536', '::1:9464', '[nope]:1', '999.0.0.1:1', 'a_b:1', 'h:-1', 'h:1x'])(
    'parseHostPort(%j) throws',
    (input) => {
      expect(() => parseHostPort(input)).toThrow(ProxyError);
    },
  );

  test('formatPath', () => {
    expect(formatPath(['interceptors', 2, 'config', 'rules', 0, 'action'])).toBe('interceptors[2].config.rules[0].action');
    expect(formatPath(['config', 'a.b'])).toBe('config["a.b"]');
  });
});
