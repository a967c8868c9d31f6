import { classifyImage, parseImageReference, type ImageReference } from '../../src/policies/image-reference';

const HEX = 'a'.repeat(32) + '0123456789abcdef'.repeat(2);
const DIGEST = `sha256:${HEX}`;

type Expected = Pick<ImageReference, 'registry' | 'repository' | 'normalized' | 'implicitTag'> & { tag?: string; digest?: string };

describe('parseImageReference normalises as containerd does', () => {
  test.each<[string, Expected]>([
    [
      'busybox',
      {
        registry: 'docker.io',
        repository: 'library/busybox',
        tag: 'latest',
        implicitTag: true,
        normalized: 'docker.io/library/busybox:latest',
      },
    ],
    [
      'busybox:1.36',
      {
        registry: 'docker.io',
        repository: 'library/busybox',
        tag: '1.36',
        implicitTag: false,
        normalized: 'docker.io/library/busybox:1.36',
      },
    ],
    [
      'busybox:latest',
      {
        registry: 'docker.io',
        repository: 'library/busybox',
        tag: 'latest',
        implicitTag: false,
        normalized: 'docker.io/library/busybox:latest',
      },
    ],
    [
      'user/app',
      { registry: 'docker.io', repository: 'user/app', tag: 'latest', implicitTag: true, normalized: 'docker.io/user/app:latest' },
    ],
    [
      'docker.io/busybox',
      {
        registry: 'docker.io',
        repository: 'library/busybox',
        tag: 'latest',
        implicitTag: true,
        normalized: 'docker.io/library/busybox:latest',
      },
    ],
    [
      'index.docker.io/busybox',
      {
        registry: 'docker.io',
        repository: 'library/busybox',
        tag: 'latest',
        implicitTag: true,
        normalized: 'docker.io/library/busybox:latest',
      },
    ],
    [
      'index.docker.io/user/app:v1',
      { registry: 'docker.io', repository: 'user/app', tag: 'v1', implicitTag: false, normalized: 'docker.io/user/app:v1' },
    ],
    [
      'localhost:5000/x',
      { registry: 'localhost:5000', repository: 'x', tag: 'latest', implicitTag: true, normalized: 'localhost:5000/x:latest' },
    ],
    ['localhost:5000/x:2', { registry: 'localhost:5000', repository: 'x', tag: '2', implicitTag: false, normalized: 'localhost:5000/x:2' }],
    ['localhost/x', { registry: 'localhost', repository: 'x', tag: 'latest', implicitTag: true, normalized: 'localhost/x:latest' }],
    // No "/": the port is read as a tag of an official image, exactly as the grammar does.
    [
      'localhost:5000',
      {
        registry: 'docker.io',
        repository: 'library/localhost',
        tag: '5000',
        implicitTag: false,
        normalized: 'docker.io/library/localhost:5000',
      },
    ],
    [
      'localhost',
      {
        registry: 'docker.io',
        repository: 'library/localhost',
        tag: 'latest',
        implicitTag: true,
        normalized: 'docker.io/library/localhost:latest',
      },
    ],
    [
      'registry.corp.example/team-a/app:1.0',
      {
        registry: 'registry.corp.example',
        repository: 'team-a/app',
        tag: '1.0',
        implicitTag: false,
        normalized: 'registry.corp.example/team-a/app:1.0',
      },
    ],
    [
      'registry.corp.example:443/a/b/c/d',
      {
        registry: 'registry.corp.example:443',
        repository: 'a/b/c/d',
        tag: 'latest',
        implicitTag: true,
        normalized: 'registry.corp.example:443/a/b/c/d:latest',
      },
    ],
    ['[::1]:5000/app:v1', { registry: '[::1]:5000', repository: 'app', tag: 'v1', implicitTag: false, normalized: '[::1]:5000/app:v1' }],
    [
      'quay.io/a__b/c.d/e--f',
      { registry: 'quay.io', repository: 'a__b/c.d/e--f', tag: 'latest', implicitTag: true, normalized: 'quay.io/a__b/c.d/e--f:latest' },
    ],
    // An uppercase first component can only be a host, so it is one.
    ['Foo/bar', { registry: 'Foo', repository: 'bar', tag: 'latest', implicitTag: true, normalized: 'Foo/bar:latest' }],
    [
      'busybox:Latest',
      {
        registry: 'docker.io',
        repository: 'library/busybox',
        tag: 'Latest',
        implicitTag: false,
        normalized: 'docker.io/library/busybox:Latest',
      },
    ],
    [
      `busybox:${'t'.repeat(128)}`,
      {
        registry: 'docker.io',
        repository: 'library/busybox',
        tag: 't'.repeat(128),
        implicitTag: false,
        normalized: `docker.io/library/busybox:${'t'.repeat(128)}`,
      },
    ],
    [
      `busybox@${DIGEST}`,
      {
        registry: 'docker.io',
        repository: 'library/busybox',
        digest: DIGEST,
        implicitTag: false,
        normalized: `docker.io/library/busybox@${DIGEST}`,
      },
    ],
    // Tag and digest: both kept, the digest is the identity.
    [
      `busybox:1.36@${DIGEST}`,
      {
        registry: 'docker.io',
        repository: 'library/busybox',
        tag: '1.36',
        digest: DIGEST,
        implicitTag: false,
        normalized: `docker.io/library/busybox@${DIGEST}`,
      },
    ],
    [
      `localhost:5000/x:1@${DIGEST}`,
      {
        registry: 'localhost:5000',
        repository: 'x',
        tag: '1',
        digest: DIGEST,
        implicitTag: false,
        normalized: `localhost:5000/x@${DIGEST}`,
      },
    ],
    [
      `registry.example/app@sha512:${'c'.repeat(128)}`,
      {
        registry: 'registry.example',
        repository: 'app',
        digest: `sha512:${'c'.repeat(128)}`,
        implicitTag: false,
        normalized: `registry.example/app@sha512:${'c'.repeat(128)}`,
      },
    ],
  ])('%s', (input, expected) => {
    expect(parseImageReference(input)).toEqual({ ok: true, ref: expected });
  });
});

describe('malformed references are rejected with a reason', () => {
  test.each<[string, RegExp]>([
    ['', /empty image reference/],
    [' busybox', /whitespace/],
    ['busy box', /whitespace/],
    ['Busybox', /must be lowercase/],
    ['docker.io/Library/busybox', /must be lowercase/],
    ['localhost:5000/App', /must be lowercase/],
    ['busybox:', /empty tag/],
    [`busybox:${'t'.repeat(129)}`, /129 characters long; at most 128/],
    ['busybox:-x', /invalid tag "-x"/],
    ['busybox:.x', /invalid tag ".x"/],
    ['busybox:a+b', /invalid tag/],
    ['busybox@sha256:abc', /invalid digest/],
    [`busybox@md5:${HEX.slice(0, 32)}`, /unsupported digest algorithm "md5"/],
    [`busybox@sha256:${HEX.slice(0, 63)}`, /64 hex digits, not 63/],
    [`busybox@sha256:${HEX.toUpperCase()}`, /must be lowercase/],
    [`busybox:1@${DIGEST}@${DIGEST}`, /more than one "@"/],
    ['docker.io/', /empty path component/],
    ['quay.io//x', /empty path component/],
    ['quay.io/x/', /empty path component/],
    ['quay.io/-x', /invalid repository path component "-x"/],
    ['quay.io/x..y', /invalid repository path component/],
    ['bad!host.example/x', /invalid registry host/],
    [`registry.example/${'a'.repeat(240)}`, /at most 255/],
    [HEX, /image ID, not a reference/],
  ])('%j', (input, reason) => {
    const result = parseImageReference(input);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toMatch(reason);
  });
});

describe('classifyImage tells image IDs from references', () => {
  test.each<[string, ReturnType<typeof classifyImage>['kind'], string]>([
    [DIGEST, 'id', DIGEST],
    [HEX, 'id', DIGEST],
    [`sha512:${'c'.repeat(128)}`, 'id', `sha512:${'c'.repeat(128)}`],
    // Not a valid digest, so containerd reads it as a name with a tag; so do we.
    ['sha256:abc', 'reference', 'docker.io/library/sha256:abc'],
    [`sha256:${HEX.toUpperCase()}`, 'reference', `docker.io/library/sha256:${HEX.toUpperCase()}`],
    [HEX.slice(0, 12), 'reference', `docker.io/library/${HEX.slice(0, 12)}:latest`],
    ['busybox', 'reference', 'docker.io/library/busybox:latest'],
    ['Busybox', 'malformed', 'repository name "library/Busybox" must be lowercase'],
  ])('%s', (input, kind, value) => {
    const spec = classifyImage(input);
    expect(spec.kind).toBe(kind);
    if (spec.kind === 'id') expect(spec.id).toBe(value);
    if (spec.kind === 'reference') expect(spec.ref.normalized).toBe(value);
    if (spec.kind === 'malformed') expect(spec.reason).toBe(value);
  });
});
