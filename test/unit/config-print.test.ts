import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { builtinTypes } from '../../src/commands/builtin-types';
import { printConfig, validateConfig } from '../../src/commands/config';
import { ConfigError, loadConfigFile, parseConfig } from '../../src/config/load';
import { listenError } from '../../src/errors';

const dir = mkdtempSync(join(tmpdir(), 'cri-proxy-print-'));
const BACKEND = 'backends: [{ name: containerd, endpoint: /run/containerd/containerd.sock }]\n';

function run(command: (o: { out(t: string): void; err(t: string): void }) => number): { code: number; out: string; err: string } {
  let out = '';
  let err = '';
  const code = command({ out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

describe('config print', () => {
  const file = join(dir, 'traced.yaml');
  writeFileSync(
    file,
    `${BACKEND}interceptors:\n  - name: tracing\n    type: tracing\n    config: { exporter: { type: otlp-http, headers: { x-api-key: s3cret, authorization: "Bearer t0ken" } } }\n`,
  );

  test('prints the effective configuration: file, flags and every default', () => {
    const result = run((o) => printConfig(file, { httpListen: '', logLevel: 'debug' }, o));
    expect(result.code).toBe(0);
    const printed = parse(result.out) as Record<string, unknown>;
    expect(printed).toMatchObject({
      listen: 'unix:///run/cri-proxy/cri-proxy.sock',
      logLevel: 'debug',
      maxMessageBytes: 16777216,
      http: { listen: '' },
      backends: [{ name: 'containerd', default: true, connectTimeoutMs: 1000 }],
      podStarts: { enabled: true, keep: 500, keepSlowest: 50, settleMs: 3000, maxStarting: 1000, ttlMs: 600000 },
      interceptors: [{ name: 'tracing', onError: 'failClosed', config: { samplingRatio: 1, podStart: { enabled: true } } }],
    });
  });

  test('masks secrets, and what it prints loads back to the same configuration apart from them', () => {
    const result = run((o) => printConfig(file, {}, o));
    expect(result.out).not.toContain('s3cret');
    expect(result.out).not.toContain('t0ken');
    const printed = parse(result.out) as { interceptors: { config: { exporter: { headers: Record<string, string> } } }[] };
    expect(printed.interceptors[0]?.config.exporter.headers).toEqual({ 'x-api-key': '[redacted]', authorization: '[redacted]' });
    const reloaded = parseConfig(result.out, join(dir, 'printed.yaml'), builtinTypes());
    const original = loadConfigFile(file, builtinTypes());
    expect({ ...reloaded, interceptors: [] }).toEqual({ ...original, interceptors: [] });
  });

  test('without a file: defaults and flags; an unreadable file exits 3', () => {
    const none = run((o) => printConfig(undefined, { upstream: '/run/crio/crio.sock' }, o));
    expect(none.code).toBe(0);
    expect(parse(none.out)).toMatchObject({ backends: [{ name: 'default', endpoint: '/run/crio/crio.sock' }] });
    const missing = run((o) => printConfig(join(dir, 'missing.yaml'), {}, o));
    expect(missing).toMatchObject({ code: 3, out: '' });
    expect(missing.err).toContain('cannot read file');
  });
});

describe('config validate', () => {
  test('valid 0, invalid 1, unreadable 3', () => {
    const good = join(dir, 'good.yaml');
    writeFileSync(good, BACKEND);
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, `${BACKEND}lisen: /x.sock\n`);
    expect(run((o) => validateConfig(good, o))).toMatchObject({ code: 0, out: `${good}: valid\n` });
    const invalid = run((o) => validateConfig(bad, o));
    expect(invalid.code).toBe(1);
    expect(invalid.err).toContain('lisen: unknown key');
    expect(run((o) => validateConfig(join(dir, 'missing.yaml'), o)).code).toBe(3);
  });

  test('a deprecated key is valid (exit 0) and reported with what to write instead', () => {
    const old = join(dir, 'old-key.yaml');
    writeFileSync(old, `${BACKEND}interceptors: [{ name: images, type: image-policy, config: { rules: [], failOpen: true } }]\n`);
    expect(run((o) => validateConfig(old, o))).toEqual({
      code: 0,
      out: `${old}: valid\n`,
      err: `config ${old}: interceptors[0].config.failOpen: deprecated; use whenLookupFails: allow (failOpen: true) or deny (failOpen: false)\n`,
    });
  });

  test('reports every problem at once: schema errors, backends named wrongly, the listen directory, rules files', () => {
    const open = join(dir, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    writeFileSync(join(dir, 'policy.yaml'), 'rules:\n  - { name: r, match: { images: [nginx] }, action: allow }\n');
    const file = join(dir, 'everything-wrong.yaml');
    writeFileSync(
      file,
      `listen: unix://${open}/proxy.sock
lisen: x
backends:
  - { name: containerd, endpoint: /run/containerd/containerd.sock, default: true }
  - { name: containerd, endpoint: /run/other.sock }
interceptors:
  - { name: audit, type: audit, config: { path: relative.log, queueSize: 0 } }
  - name: routing
    type: routing
    config:
      rules:
        - { name: a, backend: kata, match: { namespaces: [x] } }
        - { name: a, backend: containerd, match: { namespaces: [y] } }
        - { name: b, backend: containerd, match: { namespaces: 5 } }
      handlers: { gvisor: { runsc: "" } }
      events: { reconnectInitialMs: 100, reconnectMaxMs: 10, subscriberBufferMessages: "x" }
  - { name: images, type: image-policy, config: { rulesFile: policy.yaml, cacheSize: "x" } }
`,
    );
    const result = run((o) => validateConfig(file, o));
    expect(result.code).toBe(1);
    const paths = result.err
      .trimEnd()
      .split('\n')
      .map((line) => line.slice(`config ${file}: `.length).split(':')[0]);
    expect(paths.sort()).toEqual(
      [
        'listen',
        'lisen',
        'backends[1].name',
        'interceptors[0].config.path',
        'interceptors[0].config.queueSize',
        'interceptors[1].config.rules[0].backend',
        'interceptors[1].config.rules[1].name',
        'interceptors[1].config.rules[2].match.namespaces',
        'interceptors[1].config.handlers.gvisor',
        'interceptors[1].config.events.reconnectMaxMs',
        'interceptors[1].config.events.subscriberBufferMessages',
        'interceptors[2].config.rulesFile',
        'interceptors[2].config.cacheSize',
      ].sort(),
    );
  });
});

describe('--http-listen', () => {
  test('replaces http.listen, "" turns it off, and a bad value is reported under the flag', () => {
    const withFile = parseConfig(`${BACKEND}http: { listen: "127.0.0.1:1" }\n`, 't.yaml', builtinTypes(), { httpListen: '[::1]:9000' });
    expect(withFile.http.listen.written).toBe('[::1]:9000');
    expect(parseConfig(BACKEND, 't.yaml', builtinTypes(), { httpListen: '' }).http.listen.written).toBe('');
    try {
      parseConfig(BACKEND, 't.yaml', builtinTypes(), { httpListen: 'nope' });
      throw new Error('accepted');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).issues.map((i) => i.path)).toEqual(['--http-listen']);
    }
  });
});

describe('listen errors name the setting', () => {
  const errno = (code: string, path?: string): NodeJS.ErrnoException =>
    Object.assign(new Error(`raw ${code}`), { code, ...(path ? { path } : {}) });
  test.each([
    ['http.listen', '127.0.0.1:9464', errno('EADDRINUSE'), 'http.listen: 127.0.0.1:9464 is in use'],
    ['http.listen', '10.9.9.9:9464', errno('EADDRNOTAVAIL'), 'http.listen: 10.9.9.9:9464 is not an address of this machine'],
    ['listen', 'unix:///x/y.sock', errno('EACCES', '/x'), 'listen: unix:///x/y.sock cannot be opened: permission denied on /x'],
    ['listen', 'unix:///f/y.sock', errno('ENOTDIR', '/f'), 'listen: unix:///f/y.sock cannot be created: /f is not a directory'],
    [
      'listen',
      'unix:///s.sock',
      new Error('another process is serving /s.sock'),
      'listen: unix:///s.sock cannot be opened: another process is serving /s.sock',
    ],
  ])('%s %s', (setting, address, err, message) => {
    expect(listenError(setting, address, err).message).toBe(message);
  });
});
