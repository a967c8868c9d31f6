import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli';

const ROOT = join(__dirname, '../..');
const BACKEND = 'backends: [{ name: containerd, endpoint: /run/containerd/containerd.sock }]\n';
const RULES = `
rules:
  - name: no-latest
    match: { images: ["docker.io/library/*"] }
    action: allow
    constraints: { denyLatest: true }
  - name: team-a
    match: { images: ["registry.corp.example/team-a/**"] }
    namespaces: [team-a]
    action: allow
`;

let dir: string;
let enforce: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cri-proxy-policy-check-'));
  const rulesFile = join(dir, 'policy.yaml');
  writeFileSync(rulesFile, RULES);
  enforce = config('enforce.yaml', `[{ name: images, type: image-policy, config: { rulesFile: ${rulesFile} } }]`);
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function config(name: string, interceptors: string): string {
  const file = join(dir, name);
  writeFileSync(file, `${BACKEND}interceptors: ${interceptors}\n`);
  return file;
}

async function check(...argv: string[]): Promise<{ code: number; out: string[]; err: string }> {
  let out = '';
  let err = '';
  const code = await main(['policy', ...argv], { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out: out.split('\n').filter((l) => l !== ''), err };
}

describe('cri-proxy policy check', () => {
  test('every image allowed: exit 0, one line each naming the rule', async () => {
    const result = await check('check', '--config', enforce, 'nginx:1.27', 'docker.io/library/alpine:3.20');
    expect(result).toEqual({
      code: 0,
      out: [
        'allow docker.io/library/nginx:1.27 by rule "no-latest": matches "docker.io/library/*"',
        'allow docker.io/library/alpine:3.20 by rule "no-latest": matches "docker.io/library/*"',
      ],
      err: '',
    });
  });

  test('any image denied: exit 1', async () => {
    const result = await check('check', '--config', enforce, 'nginx:1.27', 'nginx', 'quay.io/x/y:1');
    expect(result.code).toBe(1);
    expect(result.out).toEqual([
      'allow docker.io/library/nginx:1.27 by rule "no-latest": matches "docker.io/library/*"',
      'deny docker.io/library/nginx:latest by rule "no-latest": tag latest (implied by giving no tag) is not allowed',
      'deny quay.io/x/y:1 by default action: no rule matches',
    ]);
  });

  test('the namespace is taken into account', async () => {
    const image = 'registry.corp.example/team-a/app:1';
    expect((await check('check', '--config', enforce, image)).code).toBe(1);
    expect((await check('check', '--config', enforce, '--namespace', 'team-a', image)).code).toBe(0);
  });

  test('malformed references and image IDs are denied', async () => {
    const result = await check('check', '--config', enforce, 'Nginx', 'a'.repeat(64));
    expect(result.code).toBe(1);
    expect(result.out).toEqual([
      'deny Nginx: malformed image reference: repository name "library/Nginx" must be lowercase',
      `deny sha256:${'a'.repeat(64)}: image IDs are resolved by the runtime; check one of its names instead`,
    ]);
  });

  test('audit-mode denials are marked and do not fail the check', async () => {
    const audit = config('audit.yaml', `[{ name: images, type: image-policy, config: { mode: audit, rules: [] } }]`);
    const result = await check('check', '--config', audit, 'nginx:1.27');
    expect(result).toEqual({ code: 0, out: ['deny (audit) docker.io/library/nginx:1.27 by default action: no rule matches'], err: '' });
  });

  test('several policies: each line names its interceptor, and any enforced denial fails', async () => {
    const two = config(
      'two.yaml',
      `[{ name: open, type: image-policy, config: { defaultAction: allow, rules: [] } }, { name: closed, type: image-policy, config: { rules: [] } }]`,
    );
    const result = await check('check', '--config', two, 'nginx:1.27');
    expect(result.code).toBe(1);
    expect(result.out).toEqual([
      '[open] allow docker.io/library/nginx:1.27 by default action: no rule matches',
      '[closed] deny docker.io/library/nginx:1.27 by default action: no rule matches',
    ]);
  });

  test('the example config checks from the repository root', async () => {
    const cwd = process.cwd();
    process.chdir(ROOT);
    try {
      expect((await check('check', '--config', 'config/image-policy.yaml', 'registry.k8s.io/pause:3.10')).code).toBe(0);
      expect((await check('check', '--config', 'config/image-policy.yaml', 'busybox:1.36')).code).toBe(1);
    } finally {
      process.chdir(cwd);
    }
  });

  test.each<[string, string[], RegExp]>([
    ['no --config', ['check', 'nginx'], /--config FILE is required/],
    ['no image', ['check', '--config', 'x.yaml'], /at least one IMAGE/],
    ['unknown option', ['check', '--bogus', 'nginx'], /Unknown option '--bogus'/],
  ])('%s: exit 2 (usage)', async (_name, argv, message) => {
    const result = await check(...argv);
    expect(result.code).toBe(2);
    expect(result.out).toEqual([]);
    expect(result.err).toMatch(message);
  });

  test('a missing config file: exit 3 (input invalid)', async () => {
    const result = await check('check', '--config', '/nonexistent/cri-proxy.yaml', 'nginx');
    expect(result.code).toBe(3);
    expect(result.err).toMatch(/cannot read file/);
  });

  test('a config without an image policy: exit 3', async () => {
    const none = config('none.yaml', '[]');
    const result = await check('check', '--config', none, 'nginx');
    expect(result.code).toBe(3);
    expect(result.err).toMatch(/no interceptor of type "image-policy"/);
  });

  test('an invalid policy is a config error: exit 3', async () => {
    const bad = config(
      'bad.yaml',
      `[{ name: images, type: image-policy, config: { rules: [{ name: r, match: { images: [nginx] }, action: allow }] } }]`,
    );
    const result = await check('check', '--config', bad, 'nginx');
    expect(result.code).toBe(3);
    expect(result.err).toMatch(/interceptors\[0\]\.config\.rules\[0\]\.match\.images\[0\]: pattern needs a registry/);
  });

  test('--help: exit 0', async () => {
    const result = await check('check', '--help');
    expect(result.code).toBe(0);
    expect(result.out[0]).toMatch(/^Usage: cri-proxy policy check --config FILE/);
  });
});
