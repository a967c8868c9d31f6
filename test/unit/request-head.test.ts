import { readRequestHead, requestHeadOf, trailersProblem } from '../../src/proxy/http2/request-head';

const VERSION = '/runtime.v1.RuntimeService/Version';

/** Header lists as real CRI clients send them (names and values alternating, in their order). */
const wellFormed: [string, string[]][] = [
  [
    'grpc-go (kubelet, crictl), authority localhost',
    [
      ':method',
      'POST',
      ':scheme',
      'http',
      ':path',
      VERSION,
      ':authority',
      'localhost',
      'content-type',
      'application/grpc',
      'user-agent',
      'grpc-go/1.65.0',
      'te',
      'trailers',
      'grpc-timeout',
      '1999947u',
    ],
  ],
  [
    'grpc-go of kubelet 1.26-1.30, a socket path as :authority',
    [
      ':method',
      'POST',
      ':scheme',
      'http',
      ':path',
      VERSION,
      ':authority',
      '/var/run/containerd/containerd.sock',
      'content-type',
      'application/grpc',
      'te',
      'trailers',
    ],
  ],
  [
    'grpc-java (Netty): :authority first, metadata with a binary key',
    [
      ':authority',
      '/run/cri-proxy/cri-proxy.sock',
      ':path',
      VERSION,
      ':method',
      'POST',
      ':scheme',
      'http',
      'content-type',
      'application/grpc',
      'te',
      'trailers',
      'user-agent',
      'grpc-java-netty/1.62.2',
      'grpc-accept-encoding',
      'gzip',
      'x-trace-bin',
      'AAECAw==',
    ],
  ],
  [
    'gRPC C-core: :scheme first, an escaped unix target as :authority',
    [
      ':scheme',
      'http',
      ':method',
      'POST',
      ':path',
      VERSION,
      ':authority',
      'unix:%2Frun%2Fcri-proxy.sock',
      'te',
      'trailers',
      'content-type',
      'application/grpc',
      'user-agent',
      'grpc-c/39.0.0 (linux; chttp2)',
    ],
  ],
  ['no :authority at all', [':method', 'POST', ':scheme', 'http', ':path', VERSION]],
  ['a tab inside a value', [':method', 'POST', ':scheme', 'http', ':path', VERSION, 'x-tab', 'a\tb']],
  ['an empty value', [':method', 'POST', ':scheme', 'http', ':path', VERSION, 'x-empty', '']],
  ['OPTIONS with the asterisk path', [':method', 'OPTIONS', ':scheme', 'http', ':path', '*']],
  ['the same content-length twice', [':method', 'POST', ':scheme', 'http', ':path', VERSION, 'content-length', '7', 'content-length', '7']],
];

const base = [':method', 'POST', ':scheme', 'http', ':path', VERSION, ':authority', 'localhost'];

/** Every way RFC 9113 §8 makes a request malformed, and the reason given for each. */
const malformed: [string, string[], RegExp][] = [
  [
    'a repeated :path (the first and the last could name different methods)',
    [...base.slice(0, 6), ':path', '/runtime.v1.RuntimeService/RemoveContainer'],
    /:path repeated/,
  ],
  ['a repeated :method', [...base, ':method', 'GET'], /:method repeated/],
  ['a repeated :scheme', [...base, ':scheme', 'https'], /:scheme repeated/],
  ['a repeated :authority', [...base, ':authority', 'other'], /:authority repeated/],
  ['a response pseudo-header (:status)', [...base, ':status', '200'], /:status is not allowed/],
  ['an unknown pseudo-header', [...base, ':foo', 'x'], /:foo is not allowed/],
  ['extended CONNECT’s :protocol (not enabled)', [...base, ':protocol', 'websocket'], /:protocol is not allowed/],
  [
    'a pseudo-header after a regular field',
    [':method', 'POST', ':scheme', 'http', 'x', 'y', ':path', VERSION],
    /:path after regular fields/,
  ],
  ['no :method', [':scheme', 'http', ':path', VERSION], /missing :method/],
  ['no :scheme', [':method', 'POST', ':path', VERSION], /missing :scheme/],
  ['no :path', [':method', 'POST', ':scheme', 'http'], /missing :path/],
  ['CONNECT (no :scheme, no :path)', [':method', 'CONNECT', ':authority', 'example:443'], /missing :scheme/],
  ['an empty :path', [':method', 'POST', ':scheme', 'http', ':path', ''], /invalid :path/],
  ['a :path that is not absolute', [':method', 'POST', ':scheme', 'http', ':path', 'runtime.v1.RuntimeService/Version'], /invalid :path/],
  ['the asterisk path outside OPTIONS', [':method', 'POST', ':scheme', 'http', ':path', '*'], /invalid :path/],
  ['connection', [...base, 'connection', 'keep-alive'], /connection-specific field "connection"/],
  ['keep-alive', [...base, 'keep-alive', 'timeout=5'], /connection-specific field "keep-alive"/],
  ['proxy-connection', [...base, 'proxy-connection', 'keep-alive'], /connection-specific field "proxy-connection"/],
  ['transfer-encoding', [...base, 'transfer-encoding', 'chunked'], /connection-specific field "transfer-encoding"/],
  ['upgrade', [...base, 'upgrade', 'h2c'], /connection-specific field "upgrade"/],
  ['te other than trailers', [...base, 'te', 'gzip'], /te "gzip"/],
  ['te with trailers and more', [...base, 'te', 'trailers, deflate'], /te "trailers, deflate"/],
  ['an upper-case name', [...base, 'X-Upper', 'v'], /invalid field name "X-Upper"/],
  ['an empty name', [...base, '', 'v'], /invalid field name ""/],
  ['a name with a space', [...base, 'x y', 'v'], /invalid field name/],
  ['a name with a colon inside', [...base, 'x:y', 'v'], /invalid field name/],
  ['a value with NUL', [...base, 'x', 'a\0b'], /invalid value for field "x"/],
  ['a value with CR', [...base, 'x', 'a\rb'], /invalid value/],
  ['a value with LF', [...base, 'x', 'a\nb'], /invalid value/],
  ['a value starting with a space', [...base, 'x', ' a'], /invalid value/],
  ['a value ending with a tab', [...base, 'x', 'a\t'], /invalid value/],
  ['a pseudo-header value with LF', [':method', 'POST', ':scheme', 'http', ':path', '/a\nb'], /invalid value for :path/],
  ['a content-length that is not a number', [...base, 'content-length', '12a'], /invalid content-length/],
  ['a negative content-length', [...base, 'content-length', '-1'], /invalid content-length/],
  ['two different content-lengths', [...base, 'content-length', '5', 'content-length', '6'], /invalid content-length "6"/],
];

describe('request header lists (RFC 9113 §8)', () => {
  test.each(wellFormed)('%s is well formed', (_name, fields) => {
    const head = readRequestHead(fields);
    expect(typeof head).toBe('object');
  });

  test.each(malformed)('%s is malformed', (_name, fields, reason) => {
    const head = readRequestHead(fields);
    expect(typeof head).toBe('string');
    expect(head).toMatch(reason);
  });

  test('the path read is the only one, and the declared length comes with it', () => {
    expect(readRequestHead([...base, 'content-length', '42'])).toEqual({ path: VERSION, contentLength: 42 });
    expect(readRequestHead(base)).toEqual({ path: VERSION, contentLength: -1 });
    expect(readRequestHead([':method', 'OPTIONS', ':scheme', 'http', ':path', '*'])).toEqual({ path: '*', contentLength: -1 });
  });
});

describe('request header lists handed out again', () => {
  const block = (fields: readonly string[], shared: boolean) => ({
    fields,
    listBytes: 0,
    overLimit: false,
    neverIndexed: undefined,
    shared,
  });

  test('a shared well-formed list is read once: the same head comes back', () => {
    const fields = [...base];
    const first = requestHeadOf(block(fields, true));
    expect(first).toEqual({ path: VERSION, contentLength: -1 });
    expect(requestHeadOf(block(fields, true))).toBe(first);
  });

  test('a malformed list is refused every time; a list not shared is read every time', () => {
    const bad = [...base, 'Upper', 'x'];
    expect(requestHeadOf(block(bad, true))).toMatch(/invalid field name/);
    expect(requestHeadOf(block(bad, true))).toMatch(/invalid field name/);
    const fields = [...base];
    expect(requestHeadOf(block(fields, false))).not.toBe(requestHeadOf(block(fields, false)));
  });
});

describe('request trailers', () => {
  test('regular fields are fine', () => {
    expect(trailersProblem([])).toBeUndefined();
    expect(trailersProblem(['x-checksum', 'abc', 'x-more', 'a\tb'])).toBeUndefined();
  });

  test.each([
    ['a pseudo-header', [':path', '/x'], /pseudo-header :path in trailers/],
    ['a response pseudo-header', ['x', 'y', ':status', '200'], /pseudo-header :status in trailers/],
    ['a connection-specific field', ['transfer-encoding', 'chunked'], /connection-specific field "transfer-encoding" in trailers/],
    ['an upper-case name', ['X-A', '1'], /invalid field name "X-A" in trailers/],
    ['a value with CR', ['x', 'a\rb'], /invalid value for field "x" in trailers/],
  ])('%s is malformed', (_name, fields, reason) => {
    expect(trailersProblem(fields)).toMatch(reason);
  });
});
