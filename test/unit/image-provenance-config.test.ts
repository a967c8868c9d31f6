/**
 * Configuring signature verification: `verify` entries and `registries` validated with their key paths (files
 * read when the config is), relative paths, docker auth files and registry challenges, the per-registry limit and
 * the persisted cache of verified digests.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { builtinTypes } from '../../src/commands/builtin-types';
import { ConfigError, parseConfig } from '../../src/config/load';
import { readPolicyFile } from '../../src/interceptors/image-policy/policy-file';
import { compilePolicy, decideAmong } from '../../src/policies/image-rules';
import { parseImageReference, type ImageReference } from '../../src/policies/image-reference';
import { parseAuthFile, parseChallenge, registryKey } from '../../src/provenance/registry/auth';
import { Semaphore } from '../../src/provenance/registry/limiter';
import { VerifiedCache } from '../../src/provenance/verified-cache';
import { generateKey, MockSigstore } from '../support/signing';

const dir = mkdtempSync(join(tmpdir(), 'cri-proxy-provenance-config-'));
const keyFile = join(dir, 'release.pub');
writeFileSync(keyFile, generateKey().publicPem);

function withPolicy(config: string): string {
  return [
    'backends:',
    '  - name: c',
    '    endpoint: unix:///run/c.sock',
    'interceptors:',
    '  - name: images',
    '    type: image-policy',
    `    config: ${config}`,
  ].join('\n');
}

function issuesOf(yaml: string, source = join(dir, 'cri-proxy.yaml')): { path: string; message: string }[] {
  try {
    parseConfig(yaml, source, builtinTypes());
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => ({ path: i.path, message: i.message }));
    throw err;
  }
  return [];
}

const rule = (verify: string, extra = ''): string =>
  `{ rules: [{ name: r, match: { images: ["registry.corp.example/**"] }, action: allow, verify: ${verify}${extra} }] }`;

describe('verify entries', () => {
  test('a valid entry loads, with key paths relative to the config file', () => {
    expect(issuesOf(withPolicy(rule('[{ keys: [release.pub] }]')))).toEqual([]);
    const config = parseConfig(withPolicy(rule('[{ keys: [release.pub] }]')), join(dir, 'cri-proxy.yaml'), builtinTypes());
    const rules = (config.interceptors[0]?.config as { rules: { verify: { keys: string[] }[] }[] }).rules;
    expect(rules[0]?.verify[0]?.keys).toEqual([keyFile]);
  });

  test.each<[string, string, RegExp]>([
    ['[]', 'interceptors[0].config.rules[0].verify', /at least one entry/],
    ['[{}]', 'interceptors[0].config.rules[0].verify[0]', /exactly one of "keys" and "keyless"/],
    [
      '[{ keys: [release.pub], keyless: { issuer: i, subject: s, trustedRoot: r.json } }]',
      'interceptors[0].config.rules[0].verify[0]',
      /exactly one/,
    ],
    ['[{ keys: [missing.pub] }]', 'interceptors[0].config.rules[0].verify[0].keys[0]', /missing\.pub: .*ENOENT/],
    [
      '[{ keyless: { subject: s, trustedRoot: r.json } }]',
      'interceptors[0].config.rules[0].verify[0].keyless',
      /"issuer" and "issuerRegExp"/,
    ],
    [
      '[{ keyless: { issuer: i, subjectRegExp: "([", trustedRoot: r.json } }]',
      'interceptors[0].config.rules[0].verify[0].keyless.subjectRegExp',
      /regular expression/,
    ],
    [
      '[{ keyless: { issuer: i, subject: s, trustedRoot: nowhere.json } }]',
      'interceptors[0].config.rules[0].verify[0].keyless.trustedRoot',
      /ENOENT/,
    ],
    ['[{ keys: [release.pub] }], onUnverifiable: maybe', 'interceptors[0].config.rules[0].onUnverifiable', /deny|audit/],
  ])('%s → %s', (verify, path, message) => {
    const issues = issuesOf(withPolicy(rule(verify)));
    expect(issues.find((i) => i.path === path)?.message).toMatch(message);
  });

  test('verify belongs to allow rules, onUnverifiable to rules with verify', () => {
    const deny = '{ rules: [{ name: r, match: { images: ["quay.io/**"] }, action: deny, verify: [{ keys: [release.pub] }] }] }';
    expect(issuesOf(withPolicy(deny))).toEqual([
      { path: 'interceptors[0].config.rules[0].verify', message: 'verify applies to allow rules only' },
    ]);
    const lone = '{ rules: [{ name: r, match: { images: ["quay.io/**"] }, action: allow, onUnverifiable: audit }] }';
    expect(issuesOf(withPolicy(lone))[0]?.path).toBe('interceptors[0].config.rules[0].onUnverifiable');
  });

  test('a trusted root that is not one is refused with its path', async () => {
    writeFileSync(join(dir, 'bad-root.json'), JSON.stringify({ mediaType: 'x', tlogs: [], certificateAuthorities: [] }));
    const issues = issuesOf(withPolicy(rule('[{ keyless: { issuer: i, subject: s, trustedRoot: bad-root.json } }]')));
    expect(issues[0]).toMatchObject({
      path: 'interceptors[0].config.rules[0].verify[0].keyless.trustedRoot',
      message: expect.stringMatching(/names no certificate authority/) as unknown,
    });
    const sigstore = await MockSigstore.start();
    writeFileSync(join(dir, 'root.json'), JSON.stringify(sigstore.trustedRoot));
    await sigstore.close();
    expect(issuesOf(withPolicy(rule('[{ keyless: { issuer: i, subject: s, trustedRoot: root.json } }]')))).toEqual([]);
  });

  test('in a rules file, key paths are relative to the rules file and problems name them', () => {
    const sub = mkdtempSync(join(dir, 'policies-'));
    writeFileSync(join(sub, 'team.pub'), generateKey('ed25519').publicPem);
    const file = join(sub, 'policy.yaml');
    writeFileSync(
      file,
      'rules:\n  - { name: r, match: { images: ["quay.io/**"] }, action: allow, verify: [{ keys: [team.pub, gone.pub] }] }\n',
    );
    const loaded = readPolicyFile(file, {});
    expect(loaded.ok ? [] : loaded.problems).toEqual([expect.stringMatching(/^rules\[0\]\.verify\[0\]\.keys\[1\]: gone\.pub: .*ENOENT/)]);
  });
});

describe('registries', () => {
  test('hosts and files are checked', () => {
    const registries = (value: string): { path: string; message: string }[] => issuesOf(withPolicy(`{ rules: [], registries: ${value} }`));
    expect(registries('{ "localhost:5000": { plainHttp: true }, "registry.corp.example": {} }')).toEqual([]);
    expect(registries('{ "https://registry.corp.example/v2": {} }')[0]?.path).toBe(
      'interceptors[0].config.registries["https://registry.corp.example/v2"]',
    );
    expect(registries('{ "r.example": { caFile: release.pub } }')[0]).toMatchObject({
      path: 'interceptors[0].config.registries["r.example"].caFile',
      message: expect.stringMatching(/no PEM certificate/) as unknown,
    });
    writeFileSync(join(dir, 'auth.json'), '{ "auths": { "r.example": { "auth": "bm9jb2xvbg==" } } }');
    expect(registries('{ "r.example": { authFile: auth.json } }')[0]?.message).toMatch(/base64 of user:password/);
    expect(registries('{ "r.example": { plainHttp: yes } }')[0]?.path).toBe('interceptors[0].config.registries["r.example"].plainHttp');
  });
});

describe('docker auth files and challenges', () => {
  test('credentials are found by registry, however the server is written', () => {
    const auth = parseAuthFile(
      JSON.stringify({
        auths: {
          'https://index.docker.io/v1/': { auth: Buffer.from('hub:secret:with:colons').toString('base64') },
          'registry.corp.example': { username: 'u', password: 'p' },
          'http://localhost:5000': { identitytoken: 'refresh' },
        },
        credsStore: 'desktop',
      }),
    );
    expect(auth.get('docker.io')).toEqual({ username: 'hub', password: 'secret:with:colons' });
    expect(auth.get('registry.corp.example')).toEqual({ username: 'u', password: 'p' });
    expect(auth.get('localhost:5000')).toEqual({ identityToken: 'refresh' });
    expect(registryKey('Registry-1.Docker.io')).toBe('docker.io');
    expect(() => parseAuthFile('[]')).toThrow(/expected an object/);
  });

  test('WWW-Authenticate challenges', () => {
    const bearer = parseChallenge('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"');
    expect(bearer?.scheme).toBe('bearer');
    expect(Object.fromEntries(bearer?.params ?? [])).toEqual({
      realm: 'https://auth.example/token',
      service: 'registry.example',
      scope: 'repository:a/b:pull',
    });
    expect(parseChallenge('Basic realm="Registry"')?.scheme).toBe('basic');
    expect(parseChallenge('Negotiate')).toBeUndefined();
    expect(parseChallenge(undefined)).toBeUndefined();
  });
});

describe('per-registry concurrency', () => {
  test('requests beyond the limit wait in order, and give up when their time is up', async () => {
    const limit = new Semaphore(2);
    const first = await limit.acquire(1000);
    const second = await limit.acquire(1000);
    const order: string[] = [];
    const third = limit.acquire(60_000).then((release) => {
      order.push('third');
      return release;
    });
    const late = limit.acquire(1).catch((err: unknown) => order.push(`late: ${(err as Error).message}`));
    await late;
    expect(limit.load).toEqual({ active: 2, waiting: 1 });
    first();
    first();
    (await third)();
    second();
    expect(order).toEqual(['late: waited 1 ms for one of its 2 connections', 'third']);
    expect(limit.load).toEqual({ active: 0, waiting: 0 });
  });
});

describe('the cache of verified digests', () => {
  const entry = {
    signer: { key: 'sha256:ab' },
    signedDigest: 'sha256:cd',
    format: 'cosign' as const,
    verifiedAt: '2025-01-01T00:00:00.000Z',
  };

  test('is bounded, persisted and read back, most recently used kept', async () => {
    const file = join(mkdtempSync(join(dir, 'state-')), 'nested', 'verified.json');
    const cache = new VerifiedCache({
      file,
      max: 2,
      onError: (p) => {
        throw new Error(p);
      },
    });
    cache.set('a', entry);
    cache.set('b', entry);
    cache.get('a');
    cache.set('c', entry);
    await cache.flush();
    const again = new VerifiedCache({
      file,
      max: 2,
      onError: (p) => {
        throw new Error(p);
      },
    });
    expect([again.get('a'), again.get('b'), again.get('c')]).toEqual([entry, undefined, entry]);
  });

  test('a file that cannot be read is started afresh; one that cannot be written leaves the cache in memory', async () => {
    const problems: string[] = [];
    const file = join(mkdtempSync(join(dir, 'state-')), 'verified.json');
    writeFileSync(file, '{ not json');
    const cache = new VerifiedCache({ file, max: 10, onError: (p) => problems.push(p) });
    expect(problems).toEqual([expect.stringMatching(/^ignoring .*verified\.json/)]);
    const blocked = new VerifiedCache({ file: join(keyFile, 'under-a-file.json'), max: 10, onError: (p) => problems.push(p) });
    blocked.set('x', entry);
    await blocked.flush();
    expect(blocked.get('x')).toEqual(entry);
    expect(problems.slice(1)).toEqual([expect.stringMatching(/^cannot read .*ENOTDIR/), expect.stringMatching(/^cannot write /)]);
    cache.set('y', entry);
    await cache.flush();
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ version: 1, entries: [['y', entry]] });
  });
});

describe('an image known by several names', () => {
  test('a name allowed outright wins over one whose rule asks for a signature', () => {
    const policy = compilePolicy({
      mode: 'enforce',
      defaultAction: 'deny',
      rules: [
        { name: 'signed', match: { images: ['registry.corp.example/**'] }, action: 'allow', verify: [{ keys: ['k.pub'] }] },
        { name: 'mirror', match: { images: ['mirror.corp.example/**'] }, action: 'allow' },
      ],
    });
    const ref = (name: string): ImageReference => {
      const parsed = parseImageReference(name);
      if (!parsed.ok) throw new Error(parsed.reason);
      return parsed.ref;
    };
    const found = decideAmong(policy, [ref('registry.corp.example/app:1'), ref('mirror.corp.example/app:1')], '');
    expect(found?.decision.rule?.name).toBe('mirror');
    const only = decideAmong(policy, [ref('quay.io/x:1'), ref('registry.corp.example/app:1')], '');
    expect(only?.decision).toMatchObject({ action: 'allow', verify: { onUnverifiable: 'deny' } });
  });
});
