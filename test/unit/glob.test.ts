import { compileGlob, globMatcher } from '../../src/policies/glob';

const matches = (pattern: string, value: string, options = {}): boolean => compileGlob(pattern, options).test(value);

describe('glob: the one dialect', () => {
  test.each([
    ['*Status', 'PodSandboxStatus', true],
    ['*Status', 'Status', true],
    ['*Status', 'StatusX', false],
    ['runtime.v1.ImageService/*', 'runtime.v1.ImageService/PullImage', true],
    ['runtime.v1.ImageService/*', 'runtime.v1XImageService/PullImage', false],
    ['Run?odSandbox', 'RunPodSandbox', true],
    ['Run?odSandbox', 'RunodSandbox', false],
    ['a+b(c)[d]{1}^$|\\', 'a+b(c)[d]{1}^$|\\', true],
    ['a.b', 'aXb', false],
    ['', '', true],
  ])('%s against %s: %s', (pattern, value, expected) => {
    expect(matches(pattern, value)).toBe(expected);
  });

  test('case-sensitive unless asked', () => {
    expect(matches('*token*', 'X-API-TOKEN')).toBe(false);
    expect(matches('*token*', 'X-API-TOKEN', { caseInsensitive: true })).toBe(true);
  });

  test('without a separator, * crosses "/"', () => {
    expect(matches('a*z', 'a/b/z')).toBe(true);
  });

  describe('with a separator, * and ? stay in a segment and ** spans segments', () => {
    const path = { separator: '/' };
    test.each([
      ['docker.io/library/*', 'docker.io/library/busybox', true],
      ['docker.io/library/*', 'docker.io/library/x/busybox', false],
      ['docker.io/**', 'docker.io/library/busybox', true],
      ['docker.io/**', 'docker.io', false],
      ['**/busybox', 'docker.io/library/busybox', true],
      ['**/busybox', 'busybox', true],
      ['**/busybox', 'docker.io/library/notbusybox', false],
      ['docker.io/**/busybox', 'docker.io/busybox', true],
      ['docker.io/**/busybox', 'docker.io/a/b/busybox', true],
      ['docker.io/**/busybox', 'quay.io/a/busybox', false],
      ['**', 'anything/at/all', true],
      ['*.example.com/app', 'registry.example.com/app', true],
      ['*.example.com/app', 'a/b.example.com/app', false],
      ['[::1]:5000/app', '[::1]:5000/app', true],
      ['reg?/app', 'reg1/app', true],
      ['reg?/app', 'reg//app', false],
    ])('%s against %s: %s', (pattern, value, expected) => {
      expect(matches(pattern, value, path)).toBe(expected);
    });
  });

  test('globMatcher: any pattern; none matches nothing', () => {
    const m = globMatcher(['a*', '*z']);
    expect([m('abc'), m('xyz'), m('mmm')]).toEqual([true, true, false]);
    expect(globMatcher([])('a')).toBe(false);
  });
});
