import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, loadConfigFile, parseConfig } from '../../src/config/load';
import { printableConfig } from '../../src/config/print';
import { builtinTypes } from '../../src/commands/builtin-types';
import { makeTempDir } from '../support/proxy-harness';

const head =
  'backends: [{ name: containerd, endpoint: /run/containerd/containerd.sock }]\ninterceptors:\n  - name: audit\n    type: audit\n';

function issues(config: string): string[] {
  try {
    parseConfig(`${head}    config: ${config}\n`, 'test.yaml', builtinTypes());
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => `${i.path}: ${i.message}`);
    throw err;
  }
  throw new Error('config was accepted');
}

test('defaults', () => {
  const config = parseConfig(`${head}    config: { path: /var/log/a.log }\n`, 'test.yaml', builtinTypes());
  expect(config.interceptors[0]?.config).toEqual({
    path: '/var/log/a.log',
    includeReads: false,
    fsync: 'record',
    fsyncIntervalMs: 1000,
    queueSize: 10000,
    whenFull: 'block',
    writeTimeoutMs: 10_000,
    headLogIntervalMs: 60_000,
    rotate: { maxBytes: 100 * 1024 * 1024, keep: 10 },
    redact: { annotationKeys: [], labelKeys: [] },
  });
});

test('problems are reported under the entry, key by key', () => {
  expect(issues('{}')).toEqual(['interceptors[0].config.path: required']);
  expect(issues('{ path: audit.log }')).toEqual(['interceptors[0].config.path: must be an absolute path']);
  expect(issues('{ path: /a.log, fsync: always, whenFull: wait }').map((i) => i.split(':')[0])).toEqual([
    'interceptors[0].config.fsync',
    'interceptors[0].config.whenFull',
  ]);
  expect(issues('{ path: /a.log, rotate: { keep: 0, size: 1 } }').map((i) => i.split(':')[0])).toEqual([
    'interceptors[0].config.rotate.keep',
    'interceptors[0].config.rotate.size',
  ]);
  expect(issues('{ path: /a.log, redact: { annotationKeys: [""] } }')).toEqual([
    'interceptors[0].config.redact.annotationKeys[0]: must not be empty',
  ]);
});

test('the example config/audit.yaml is valid', () => {
  const config = loadConfigFile(join(__dirname, '../../config/audit.yaml'), builtinTypes());
  expect(config.interceptors.map((i) => [i.type, i.onError])).toEqual([['audit', 'failClosed']]);
});

describe('keyFile', () => {
  const KEY = 'k3y-S3NT1NEL-0123456789abcdef0123456789abcdef';
  let dir: string;
  beforeEach(() => {
    dir = makeTempDir('cri-proxy-audit-key-');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const configWith = (keyLine: string): string => {
    const file = join(dir, 'cri-proxy.yaml');
    writeFileSync(file, `${head}    config:\n      path: ${join(dir, 'audit.log')}\n      ${keyLine}\n`);
    return file;
  };
  const problems = (file: string): string[] => {
    try {
      loadConfigFile(file, builtinTypes());
    } catch (err) {
      if (err instanceof ConfigError) return err.issues.map((i) => `${i.path}: ${i.message}`);
      throw err;
    }
    return [];
  };

  test('a relative path is read next to the config file; config print shows the path, never the key', () => {
    writeFileSync(join(dir, 'audit.key'), `${KEY}\n`, { mode: 0o600 });
    const types = builtinTypes();
    const config = loadConfigFile(configWith('keyFile: audit.key'), types);
    expect((config.interceptors[0]?.config as { keyFile: string }).keyFile).toBe(join(dir, 'audit.key'));
    const printed = printableConfig(config, types);
    expect(printed).toContain(join(dir, 'audit.key'));
    expect(printed).not.toContain(KEY);
  });

  test('a missing, short or exposed key is refused at its key path, without its content', () => {
    expect(problems(configWith('keyFile: missing.key'))).toEqual([
      expect.stringMatching(/^interceptors\[0\]\.config\.keyFile: .*missing\.key: cannot read the key file/),
    ]);
    writeFileSync(join(dir, 'short.key'), 'too-short\n', { mode: 0o600 });
    expect(problems(configWith('keyFile: short.key'))).toEqual([
      expect.stringMatching(/^interceptors\[0\]\.config\.keyFile: .*at least 32 are needed/),
    ]);
    writeFileSync(join(dir, 'open.key'), KEY);
    chmodSync(join(dir, 'open.key'), 0o644);
    const exposed = problems(configWith('keyFile: open.key'));
    expect(exposed).toEqual([expect.stringMatching(/^interceptors\[0\]\.config\.keyFile: .*accessible to other users \(mode 0644\)/)]);
    expect(exposed.join('\n')).not.toContain(KEY);
  });
});
