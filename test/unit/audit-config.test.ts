import { join } from 'node:path';
import { ConfigError, loadConfigFile, parseConfig } from '../../src/config/load';
import { builtinTypes } from '../../src/commands/builtin-types';

const head = 'backends: [{ name: containerd, endpoint: /run/containerd/containerd.sock }]\ninterceptors:\n  - name: audit\n    type: audit\n';

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
