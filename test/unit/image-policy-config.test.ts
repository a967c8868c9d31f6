import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfigFile, parseConfig } from '../../src/config/load';
import { builtinTypes } from '../../src/commands/builtin-types';
import type { ConfigIssue } from '../../src/config/issues';
import '../../src/interceptors/image-policy';
import { parseImageReference } from '../../src/policies/image-reference';
import { readPolicyFile } from '../../src/interceptors/image-policy/policy-file';
import { deprecatedSettings, reportDeprecatedSettings } from '../../src/config/deprecations';
import { printableConfig } from '../../src/config/print';
import { createLogger } from '../../src/log';
import { Registry } from 'prom-client';

const ROOT = join(__dirname, '../..');
const BACKEND = 'backends: [{ name: containerd, endpoint: /run/containerd/containerd.sock }]\n';

function withPolicy(config: string): string {
  return `${BACKEND}interceptors:\n  - name: images\n    type: image-policy\n    config: ${config}\n`;
}

function issuesOf(yaml: string): { path: string; message: string }[] {
  try {
    parseConfig(yaml, 'test.yaml', builtinTypes());
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i: ConfigIssue) => ({ path: i.path, message: i.message }));
    throw err;
  }
  throw new Error('config was accepted');
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cri-proxy-policy-config-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function policyFile(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

describe('the example files', () => {
  test('config/image-policy.yaml validates, its rules file found next to it', () => {
    const cwd = process.cwd();
    process.chdir('/');
    try {
      const config = loadConfigFile(join(ROOT, 'config/image-policy.yaml'), builtinTypes());
      expect(config.interceptors.map((i) => i.type)).toEqual(['image-policy']);
      expect(config.interceptors[0]?.config).toMatchObject({ rulesFile: join(ROOT, 'config/policies/image-policy-rules.yaml') });
    } finally {
      process.chdir(cwd);
    }
  });

  test('config/policies/image-policy-rules.yaml is a valid rules file that decides as its comments say', () => {
    const loaded = readPolicyFile(join(ROOT, 'config/policies/image-policy-rules.yaml'), {});
    if (!loaded.ok) throw new Error(loaded.problems.join('\n'));
    const decide = (image: string, ns: string): string => {
      const parsed = parseImageReference(image);
      if (!parsed.ok) throw new Error(parsed.reason);
      const d = loaded.policy.decide(parsed.ref, ns);
      return `${d.action} ${d.rule?.name ?? 'default'}`;
    };
    expect(decide('registry.k8s.io/kube-proxy:v1.31.0', 'kube-system')).toBe('allow kubernetes');
    expect(decide('registry.corp.example/team-b/app:1', 'team-b')).toBe('deny corp-pinned');
    expect(decide('registry.corp.example/team-a/app:1', 'team-a-dev')).toBe('allow team-a-dev');
    expect(decide('nginx', 'web')).toBe('deny no-latest');
    expect(decide('nginx:1.27', 'web')).toBe('allow no-latest');
    expect(decide('busybox:1.36', 'web')).toBe('deny no-busybox');
    expect(decide('quay.io/x/y:1', 'web')).toBe('deny default');
  });
});

describe('config validation', () => {
  test('inline rules validate, with defaults', () => {
    const config = parseConfig(
      withPolicy('{ rules: [{ name: r, match: { images: ["docker.io/**"] }, action: allow }] }'),
      't',
      builtinTypes(),
    );
    expect(config.interceptors[0]?.config).toEqual({
      rules: [{ name: 'r', match: { images: ['docker.io/**'] }, action: 'allow' }],
      mode: 'enforce',
      defaultAction: 'deny',
      imageStatusTimeoutMs: 2000,
      cacheSize: 1000,
      whenLookupFails: 'deny',
      registries: {},
      stateDir: '/var/lib/cri-proxy/image-policy',
      registryTimeoutMs: 10_000,
      registryConcurrency: 4,
      verifiedCacheSize: 10_000,
    });
  });

  test('whenLookupFails: the old failOpen key still works, is reported as deprecated and not printed', () => {
    const types = builtinTypes();
    const rules = 'rules: [{ name: r, match: { images: ["docker.io/**"] }, action: allow }]';
    const settingsOf = (extra: string): unknown => parseConfig(withPolicy(`{ ${rules}${extra} }`), 't', types).interceptors[0]?.config;
    expect(settingsOf(', failOpen: true')).toMatchObject({ whenLookupFails: 'allow' });
    expect(settingsOf(', failOpen: false')).toMatchObject({ whenLookupFails: 'deny' });
    expect(settingsOf(', whenLookupFails: allow')).toMatchObject({ whenLookupFails: 'allow' });
    const old = parseConfig(withPolicy(`{ ${rules}, failOpen: true }`), 't', types);
    expect(deprecatedSettings(old, types)).toEqual([
      { setting: 'interceptors[0].config.failOpen', instead: 'use whenLookupFails: allow (failOpen: true) or deny (failOpen: false)' },
    ]);
    expect(deprecatedSettings(parseConfig(withPolicy(`{ ${rules} }`), 't', types), types)).toEqual([]);
    const printed = printableConfig(old, types);
    expect(printed).toContain('whenLookupFails: allow');
    expect(printed).not.toContain('failOpen');
  });

  test('whenLookupFails: logged once at start and shown in cri_proxy_deprecated_settings, reset by a config without it', async () => {
    const types = builtinTypes();
    const rules = 'rules: [{ name: r, match: { images: ["docker.io/**"] }, action: allow }]';
    const registry = new Registry();
    const lines: unknown[] = [];
    const log = createLogger('info', (line) => lines.push(JSON.parse(line)));
    reportDeprecatedSettings(parseConfig(withPolicy(`{ ${rules}, failOpen: true }`), 't', types), types, log, registry);
    const gauge = async (): Promise<unknown> =>
      (await registry.getSingleMetric('cri_proxy_deprecated_settings')?.get())?.values.map((v) => [v.labels.setting, v.value]);
    expect(await gauge()).toEqual([['interceptors[0].config.failOpen', 1]]);
    expect(lines).toEqual([expect.objectContaining({ level: 'warn', setting: 'interceptors[0].config.failOpen' })]);
    reportDeprecatedSettings(parseConfig(withPolicy(`{ ${rules} }`), 't', types), types, log, registry);
    expect(await gauge()).toEqual([]);
    expect(lines).toHaveLength(1);
  });

  test.each<[string, string, RegExp]>([
    ['{}', 'interceptors[0].config', /exactly one of "rules" .* or "rulesFile"/],
    ['{ rules: [], rulesFile: /x.yaml }', 'interceptors[0].config', /exactly one of/],
    [
      '{ rules: [{ name: r, match: { images: [busybox] }, action: allow }] }',
      'interceptors[0].config.rules[0].match.images[0]',
      /needs a registry/,
    ],
    ['{ rules: [{ name: r, match: { images: [] }, action: allow }] }', 'interceptors[0].config.rules[0].match.images', /at least one/],
    ['{ rules: [{ name: r, match: { images: ["quay.io/**"] }, action: maybe }] }', 'interceptors[0].config.rules[0].action', /allow/],
    [
      '{ rules: [{ name: r, match: { images: ["quay.io/**"] }, action: deny, constraints: { denyLatest: true } }] }',
      'interceptors[0].config.rules[0].constraints',
      /allow rules only/,
    ],
    [
      '{ rules: [{ name: r, match: { images: ["quay.io/**"] }, action: allow }, { name: r, match: { images: ["quay.io/**"] }, action: deny }] }',
      'interceptors[0].config.rules[1].name',
      /duplicate rule name "r" \(also rules\[0\]\)/,
    ],
    [
      '{ rules: [{ name: r, match: { images: ["quay.io/**"] }, namespaces: [Prod], action: allow }] }',
      'interceptors[0].config.rules[0].namespaces[0]',
      /lowercase/,
    ],
    [
      '{ rules: [{ name: r, match: { images: ["quay.io/**"] }, action: allow, tags: [x] }] }',
      'interceptors[0].config.rules[0].tags',
      /unknown key/,
    ],
    ['{ rules: [], mode: strict }', 'interceptors[0].config.mode', /enforce/],
    ['{ rules: [], cacheSize: 0 }', 'interceptors[0].config.cacheSize', /.+/],
    ['{ rules: [], whenLookupFails: open }', 'interceptors[0].config.whenLookupFails', /deny.*allow/],
    ['{ rules: [], whenLookupFails: allow, failOpen: true }', 'interceptors[0].config.failOpen', /old name of "whenLookupFails"/],
    ['{ rulesFile: /nonexistent/policy.yaml }', 'interceptors[0].config.rulesFile', /^\/nonexistent\/policy.yaml: cannot read file/],
  ])('%s', (config, path, message) => {
    const issues = issuesOf(withPolicy(config));
    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe(path);
    expect(issues[0]?.message).toMatch(message);
  });

  test('a rules file is validated as part of the config, each problem with its place in the file', () => {
    const file = policyFile(
      'bad.yaml',
      'rules:\n  - name: a\n    match: { images: ["docker.io/*"] }\n    action: allow\n  - name: b\n    match: { images: ["quay.io/**"] }\n    action: perhaps\n',
    );
    const issues = issuesOf(withPolicy(`{ rulesFile: ${file} }`));
    expect(issues.map((i) => i.path)).toEqual(['interceptors[0].config.rulesFile', 'interceptors[0].config.rulesFile']);
    expect(issues[0]?.message).toMatch(
      new RegExp(`^${file}: rules\\[0\\]\\.match\\.images\\[0\\]: docker.io names have two path segments`),
    );
    expect(issues[1]?.message).toMatch(new RegExp(`^${file}: rules\\[1\\]\\.action: `));
  });

  test.each<[string, string, RegExp]>([
    ['syntax', 'rules: [\n', /^Flow sequence .* \(line 2, column 1\)$/],
    ['missing rules', 'mode: audit\n', /^rules: required \(line 1, column 1\)$/],
    ['unknown key', 'rules: []\nextra: 1\n', /^extra: unknown key; expected one of: mode, defaultAction, rules \(line 2, column 1\)$/],
    [
      'unknown rule key',
      'rules: [{ name: r, match: { images: ["quay.io/**"] }, action: allow, tag: x }]\n',
      /^rules\[0\]\.tag: unknown key; expected one of: name, match, namespaces, action, constraints, verify, onUnverifiable \(line 1, column 70\)$/,
    ],
    ['mode clash', 'mode: audit\nrules: []\n', /^mode: "audit" conflicts with mode "enforce" in the interceptor config/],
  ])('rules file problem: %s', (name, text, message) => {
    const file = policyFile(`${name.replace(/ /g, '-')}.yaml`, text);
    const issues = issuesOf(withPolicy(`{ rulesFile: ${file}, mode: enforce }`));
    expect(issues[0]?.path).toBe('interceptors[0].config.rulesFile');
    expect(issues[0]?.message.slice(file.length + 2)).toMatch(message);
  });

  test('settings in the interceptor config fill in what the rules file leaves out', () => {
    const file = policyFile('partial.yaml', 'rules: []\n');
    const loaded = readPolicyFile(file, { mode: 'audit', defaultAction: 'allow' });
    expect(loaded.ok && [loaded.policy.mode, loaded.policy.defaultAction]).toEqual(['audit', 'allow']);
    const defaults = readPolicyFile(file, {});
    expect(defaults.ok && [defaults.policy.mode, defaults.policy.defaultAction]).toEqual(['enforce', 'deny']);
  });
});
