import { parseImageReference, type ImageReference } from '../../src/policies/image-reference';
import {
  compileImagePattern,
  compileNamespacePattern,
  compilePolicy,
  decideAmong,
  type ImageRule,
  type PolicyAction,
} from '../../src/policies/image-rules';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

function ref(image: string): ImageReference {
  const parsed = parseImageReference(image);
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.ref;
}

describe('image patterns', () => {
  test.each<[string, string, number, string[], string[]]>([
    ['docker.io/library/*', 'docker.io/library/*', 18, ['docker.io/library/busybox'], ['docker.io/library/a/b', 'docker.io/user/app']],
    ['docker.io/**', 'docker.io/**', 10, ['docker.io/library/busybox', 'docker.io/a/b/c'], ['docker.iox/a/b', 'quay.io/docker.io/a']],
    [
      'registry.corp.example/team-a/**',
      'registry.corp.example/team-a/**',
      29,
      ['registry.corp.example/team-a/x', 'registry.corp.example/team-a/x/y'],
      ['registry.corp.example/team-a', 'registry.corp.example/team-ab/x'],
    ],
    ['**', '**', 0, ['docker.io/library/busybox', 'localhost:5000/x'], []],
    ['**/busybox', '**/busybox', 0, ['docker.io/library/busybox', 'quay.io/busybox'], ['docker.io/library/busybox2']],
    ['docker.io/**/app', 'docker.io/**/app', 10, ['docker.io/a/app', 'docker.io/a/b/app'], ['docker.io/a/app/x', 'quay.io/a/app']],
    ['*.corp.example/**', '*.corp.example/**', 0, ['registry.corp.example/x'], ['corp.example/x', 'a.corp.example.evil/x']],
    ['quay.io/team-*/app', 'quay.io/team-*/app', 13, ['quay.io/team-a/app', 'quay.io/team-/app'], ['quay.io/team-a/b/app']],
    // Patterns are normalised like references, so the way a user writes an image name works.
    ['docker.io/busybox', 'docker.io/library/busybox', 25, ['docker.io/library/busybox'], ['docker.io/library/busybox2']],
    ['index.docker.io/user/*', 'docker.io/user/*', 15, ['docker.io/user/app'], []],
    ['Registry.Corp.Example/x', 'registry.corp.example/x', 23, ['registry.corp.example/x'], []],
    ['localhost:5000/**', 'localhost:5000/**', 15, ['localhost:5000/x/y'], ['localhost:5001/x']],
  ])('%s', (pattern, source, literalLength, matches, misses) => {
    const result = compileImagePattern(pattern);
    if (!result.ok) throw new Error(result.reason);
    expect(result.pattern.source).toBe(source);
    expect(result.pattern.literalLength).toBe(literalLength);
    for (const m of matches) expect([m, result.pattern.regex.test(m)]).toEqual([m, true]);
    for (const m of misses) expect([m, result.pattern.regex.test(m)]).toEqual([m, false]);
  });

  test.each<[string, RegExp]>([
    ['', /empty pattern/],
    ['busybox', /needs a registry and a repository/],
    ['library/busybox', /must start with a registry host or a wildcard, e\.g\. docker\.io\/library\/busybox/],
    ['docker.io/*', /use docker\.io\/library\/\*/],
    ['docker.io/library/busybox:latest', /denyLatest/],
    [`docker.io/library/busybox@${DIGEST}`, /requireDigest/],
    ['docker.io/lib**', /whole path segment/],
    ['quay.io/App', /lowercase/],
    ['quay.io//x', /empty path segment/],
    ['quay.io/x?', /invalid repository part/],
    ['quay.io/x y', /whitespace/],
  ])('rejects %j', (pattern, reason) => {
    const result = compileImagePattern(pattern);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toMatch(reason);
  });

  test('namespace patterns', () => {
    const glob = compileNamespacePattern('team-*');
    expect(glob.ok && glob.regex.test('team-a') && !glob.regex.test('teams')).toBe(true);
    expect(compileNamespacePattern('Team').ok).toBe(false);
    expect(compileNamespacePattern('').ok).toBe(false);
  });
});

const rules: ImageRule[] = [
  { name: 'hub-all', match: { images: ['docker.io/**'] }, action: 'allow' },
  { name: 'official', match: { images: ['docker.io/library/*'] }, action: 'allow' },
  { name: 'no-busybox', match: { images: ['docker.io/library/busybox'] }, action: 'deny' },
  { name: 'corp', match: { images: ['registry.corp.example/**'] }, action: 'allow', constraints: { requireDigest: true } },
  { name: 'team-a-ns', match: { images: ['registry.corp.example/team-a/**'] }, namespaces: ['team-a'], action: 'allow' },
  { name: 'team-a-deny', match: { images: ['registry.corp.example/team-a/**'] }, action: 'deny' },
  { name: 'tie-allow', match: { images: ['quay.io/x/*'] }, action: 'allow' },
  { name: 'tie-deny', match: { images: ['quay.io/x/*'] }, action: 'deny' },
  { name: 'order-1', match: { images: ['ghcr.io/o/*'] }, action: 'deny' },
  { name: 'order-2', match: { images: ['ghcr.io/o/*'] }, action: 'deny' },
  { name: 'nginx', match: { images: ['docker.io/library/nginx'] }, action: 'allow', constraints: { denyLatest: true } },
  { name: 'shared', match: { images: ['registry.corp.example/shared/**'] }, namespaces: ['team-*'], action: 'allow' },
  // The longest literal prefix among a rule's patterns is what counts.
  { name: 'multi', match: { images: ['**', 'gcr.io/distroless/static'] }, action: 'allow' },
];

describe('precedence', () => {
  const policy = compilePolicy({ mode: 'enforce', defaultAction: 'deny', rules });

  test.each<[string, string, PolicyAction, string | undefined, RegExp]>([
    ['busybox', 'default', 'deny', 'no-busybox', /matches "docker.io\/library\/busybox"/],
    ['alpine:3.20', 'default', 'allow', 'official', /matches "docker.io\/library\/\*"/],
    ['user/app:1', 'default', 'allow', 'hub-all', /matches "docker.io\/\*\*"/],
    ['nginx:1.25', 'default', 'allow', 'nginx', /matches/],
    ['nginx', 'default', 'deny', 'nginx', /^tag latest \(implied by giving no tag\) is not allowed$/],
    ['nginx:latest', 'default', 'deny', 'nginx', /^tag latest is not allowed$/],
    [`nginx@${DIGEST}`, 'default', 'allow', 'nginx', /matches/],
    [`nginx:latest@${DIGEST}`, 'default', 'allow', 'nginx', /matches/],
    ['registry.corp.example/other/app:1', 'default', 'deny', 'corp', /a digest is required .* got tag "1"/],
    [`registry.corp.example/other/app@${DIGEST}`, 'default', 'allow', 'corp', /matches/],
    ['Registry.Corp.Example/other/app:1', 'default', 'deny', 'corp', /digest is required/],
    ['registry.corp.example/team-a/app:1', 'team-a', 'allow', 'team-a-ns', /matches/],
    ['registry.corp.example/team-a/app:1', 'team-b', 'deny', 'team-a-deny', /matches/],
    ['registry.corp.example/team-a/app:1', '', 'deny', 'team-a-deny', /matches/],
    ['registry.corp.example/shared/lib:1', 'team-c', 'allow', 'shared', /matches/],
    ['registry.corp.example/shared/lib:1', 'default', 'deny', 'corp', /digest is required/],
    ['quay.io/x/y', 'default', 'deny', 'tie-deny', /matches/],
    ['ghcr.io/o/p', 'default', 'deny', 'order-1', /matches/],
    ['gcr.io/distroless/static', 'default', 'allow', 'multi', /matches "gcr.io\/distroless\/static"/],
    ['gcr.io/other/x', 'default', 'allow', 'multi', /matches "\*\*"/],
  ])('%s in namespace %j', (image, namespace, action, rule, reason) => {
    const decision = policy.decide(ref(image), namespace);
    expect(decision.action).toBe(action);
    expect(decision.rule?.name).toBe(rule);
    expect(decision.reason).toMatch(reason);
    expect(decision.mode).toBe('enforce');
  });

  test('the default action covers what no rule matches', () => {
    const deny = compilePolicy({ mode: 'audit', defaultAction: 'deny', rules: rules.slice(0, 3) });
    expect(deny.decide(ref('quay.io/a/b'), 'x')).toEqual({ action: 'deny', reason: 'no rule matches', rule: undefined, mode: 'audit' });
    const allow = compilePolicy({ mode: 'enforce', defaultAction: 'allow', rules: [] });
    expect(allow.decide(ref('quay.io/a/b'), 'x')).toEqual({ action: 'allow', reason: 'no rule matches', rule: undefined, mode: 'enforce' });
  });

  test('rule references carry the index', () => {
    expect(policy.decide(ref('ghcr.io/o/p'), 'x').rule).toEqual({ name: 'order-1', index: 8 });
  });

  test('an invalid pattern fails compilation', () => {
    expect(() =>
      compilePolicy({ mode: 'enforce', defaultAction: 'deny', rules: [{ name: 'r', match: { images: ['busybox'] }, action: 'allow' }] }),
    ).toThrow(/rule "r" image pattern "busybox"/);
  });
});

describe('images known by several names', () => {
  const policy = compilePolicy({
    mode: 'enforce',
    defaultAction: 'deny',
    rules: [{ name: 'pinned', match: { images: ['docker.io/library/*'] }, action: 'allow', constraints: { requireDigest: true } }],
  });

  test('allowed when any name is allowed', () => {
    const found = decideAmong(policy, [ref('busybox:1'), ref(`busybox@${DIGEST}`)], 'ns');
    expect(found?.decision.action).toBe('allow');
    expect(found?.ref.digest).toBe(DIGEST);
  });

  test('denied with the first name otherwise', () => {
    const found = decideAmong(policy, [ref('busybox:1'), ref('quay.io/a/b:1')], 'ns');
    expect(found?.decision.action).toBe('deny');
    expect(found?.ref.normalized).toBe('docker.io/library/busybox:1');
  });

  test('no names, no decision', () => {
    expect(decideAmong(policy, [], 'ns')).toBeUndefined();
  });
});
