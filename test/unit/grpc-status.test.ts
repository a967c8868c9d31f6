import {
  decodeGrpcMessage,
  encodeGrpcMessage,
  formatGrpcTimeout,
  parseGrpcTimeout,
  readStatusFields,
  statusFields,
} from '../../src/proxy/grpc-status';

describe('grpc-message', () => {
  test.each([
    ['plain ASCII stays as is', 'image "x" denied by rule "r"', 'image "x" denied by rule "r"'],
    ['percent is escaped', '100% sure', '100%25 sure'],
    ['control characters are escaped', 'a\nb\tc', 'a%0Ab%09c'],
    ['UTF-8 is escaped byte by byte', 'über ✓', '%C3%BCber %E2%9C%93'],
    ['empty', '', ''],
  ])('%s', (_name, message, encoded) => {
    expect(encodeGrpcMessage(message)).toBe(encoded);
    expect(decodeGrpcMessage(encoded)).toBe(message);
  });

  test('only printable ASCII (0x20-0x7E) goes out unescaped', () => {
    const all = Array.from({ length: 0x80 }, (_, i) => String.fromCharCode(i)).join('');
    const encoded = encodeGrpcMessage(all);
    expect(encoded).toMatch(/^[\x20-\x7e]*$/);
    expect(decodeGrpcMessage(encoded)).toBe(all);
  });

  test('a malformed escape is kept as received rather than lost', () => {
    expect(decodeGrpcMessage('bad %ZZ escape')).toBe('bad %ZZ escape');
  });
});

describe('status headers and trailers', () => {
  test('a trailers-only response carries :status 200, content-type and the encoded status; trailers only the status', () => {
    expect(statusFields(7, 'denied: 100%', true)).toEqual([
      ':status',
      '200',
      'content-type',
      'application/grpc',
      'grpc-status',
      '7',
      'grpc-message',
      'denied: 100%25',
    ]);
    expect(statusFields(14, 'down', false)).toEqual(['grpc-status', '14', 'grpc-message', 'down']);
  });

  test('readStatusFields decodes what it is sent; a missing or garbled status is UNKNOWN', () => {
    expect(readStatusFields(['grpc-status', '5', 'grpc-message', 'not%20found'])).toEqual({ code: 5, message: 'not found' });
    expect(readStatusFields(['grpc-status', '0'])).toEqual({ code: 0, message: '' });
    expect(readStatusFields([])).toEqual({ code: 2, message: 'missing grpc-status' });
    expect(readStatusFields(['grpc-status', 'x'])).toEqual({ code: 2, message: 'missing grpc-status' });
  });
});

describe('grpc-timeout', () => {
  test.each([
    ['1H', 3_600_000],
    ['2M', 120_000],
    ['3S', 3000],
    ['250m', 250],
    ['1500u', 1.5],
    ['2000000n', 2],
    ['99999999m', 99_999_999],
  ])('%s is %d ms', (value, ms) => {
    expect(parseGrpcTimeout(value)).toBe(ms);
  });

  test.each([[undefined], [''], ['5'], ['5x'], ['-5m'], ['1.5S'], ['123456789m'], [['1S', '2S']]])('%j is no timeout', (value) => {
    expect(parseGrpcTimeout(value)).toBeUndefined();
  });

  test('formatting rounds up, stays within 8 digits, and parses back to at least the time given', () => {
    expect(formatGrpcTimeout(0.2)).toBe('1m');
    expect(formatGrpcTimeout(-5)).toBe('0m');
    expect(formatGrpcTimeout(99_999_999)).toBe('99999999m');
    expect(formatGrpcTimeout(100_000_000)).toBe('100000S');
    for (const ms of [1, 999, 123_456, 99_999_999, 100_000_001, 3_600_000_000]) {
      const formatted = formatGrpcTimeout(ms);
      expect(formatted.length).toBeLessThanOrEqual(9);
      expect(parseGrpcTimeout(formatted)).toBeGreaterThanOrEqual(ms);
    }
  });
});
