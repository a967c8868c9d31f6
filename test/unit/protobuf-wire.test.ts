import { decodeMessage, encodeMessage } from '../../src/messages/codec';
import { lengthDelimited, replaceStringAt, stringAt, varintAt, wireFields, WireFormatError } from '../../src/messages/protobuf-wire';

const hex = (b: Buffer): string => b.toString('hex');

describe('wireFields', () => {
  test('every wire type, with exact entry bounds', () => {
    // 1: varint 150; 2: fixed64; 3: "hi"; 4: fixed32.
    const bytes = Buffer.from('089601' + '11' + '0102030405060708' + '1a026869' + '25' + '01020304', 'hex');
    const fields = wireFields(bytes);
    expect(fields.map((f) => [f.number, f.wireType, f.start, f.end])).toEqual([
      [1, 0, 0, 3],
      [2, 1, 3, 12],
      [3, 2, 12, 16],
      [4, 5, 16, 21],
    ]);
    expect(bytes.subarray(fields[2]?.valueStart, fields[2]?.end).toString()).toBe('hi');
  });

  test('large field numbers and lengths (multi-byte varints)', () => {
    const payload = Buffer.alloc(300, 7);
    const entry = lengthDelimited(100_000, payload);
    const [field] = wireFields(entry);
    expect(field).toMatchObject({ number: 100_000, wireType: 2, start: 0, end: entry.length });
    expect(entry.length - (field?.valueStart ?? 0)).toBe(300);
  });

  test('an empty message has no fields', () => {
    expect(wireFields(Buffer.alloc(0))).toEqual([]);
  });

  test.each<[string, string]>([
    ['truncated varint', '08'],
    ['length past the end', '1a05aa'],
    ['fixed64 past the end', '110102'],
    ['group wire type', '0b'],
    ['field number 0', '0001'],
    ['unterminated 11-byte varint', '08ffffffffffffffffffff01'],
  ])('malformed: %s', (_name, input) => {
    expect(() => wireFields(Buffer.from(input, 'hex'))).toThrow(WireFormatError);
  });

  test('agrees with protobufjs on a real message', () => {
    const bytes = encodeMessage('runtime.v1.Container', {
      id: 'c1',
      pod_sandbox_id: 's1',
      metadata: { name: 'main', attempt: 2 },
      state: 'CONTAINER_RUNNING',
      created_at: '5',
    });
    expect(wireFields(bytes).map((f) => f.number)).toEqual([1, 2, 3, 6, 7]);
  });
});

describe('stringAt', () => {
  const sandbox = encodeMessage('runtime.v1.PodSandbox', { id: 'abc', metadata: { name: 'n', uid: 'u-1', namespace: 'ns' } });

  test('top level and nested', () => {
    expect(stringAt(sandbox, [1])).toBe('abc');
    expect(stringAt(sandbox, [2, 2])).toBe('u-1');
    expect(stringAt(sandbox, [2, 3])).toBe('ns');
  });

  test('absent fields are undefined', () => {
    expect(stringAt(sandbox, [7])).toBeUndefined();
    expect(stringAt(sandbox, [9, 1])).toBeUndefined();
  });

  test('the last occurrence of a string wins; repeated message occurrences merge', () => {
    const twice = Buffer.concat([lengthDelimited(1, Buffer.from('first')), lengthDelimited(1, Buffer.from('second'))]);
    expect(stringAt(twice, [1])).toBe('second');
    const split = Buffer.concat([
      lengthDelimited(2, lengthDelimited(1, Buffer.from('name'))),
      lengthDelimited(2, lengthDelimited(3, Buffer.from('ns'))),
    ]);
    expect([stringAt(split, [2, 1]), stringAt(split, [2, 3])]).toEqual(['name', 'ns']);
  });
});

describe('replaceStringAt', () => {
  const request = encodeMessage('runtime.v1.RunPodSandboxRequest', {
    config: { metadata: { name: 'p', namespace: 'ns', uid: 'u' }, labels: { a: 'b' } },
    runtime_handler: 'kata-fast',
  });

  test('replaces a top-level string and keeps every other byte', () => {
    const out = replaceStringAt(request, [2], 'kata');
    expect(decodeMessage('runtime.v1.RunPodSandboxRequest', out)).toEqual({
      ...decodeMessage('runtime.v1.RunPodSandboxRequest', request),
      runtime_handler: 'kata',
    });
    const config = wireFields(request)[0];
    expect(hex(out.subarray(0, config?.end))).toBe(hex(request.subarray(0, config?.end)));
  });

  test('"" removes the field, as proto3 encodes an empty string', () => {
    const out = replaceStringAt(request, [2], '');
    expect(wireFields(out).map((f) => f.number)).toEqual([1]);
    expect(decodeMessage('runtime.v1.RunPodSandboxRequest', out)['runtime_handler']).toBeUndefined();
  });

  test('adds a field that was absent, and a nested message on the way', () => {
    const pull = encodeMessage('runtime.v1.PullImageRequest', { auth: { username: 'u' } });
    const out = replaceStringAt(pull, [1, 19], 'kata');
    expect(decodeMessage('runtime.v1.PullImageRequest', out)).toEqual({ auth: { username: 'u' }, image: { runtime_handler: 'kata' } });
    expect(replaceStringAt(pull, [1, 19], '')).toEqual(pull);
  });

  test('nested: keeps unknown fields and the order of the other entries', () => {
    const unknown = lengthDelimited(999, Buffer.from('future'));
    const image = Buffer.concat([lengthDelimited(1, Buffer.from('busybox')), unknown, lengthDelimited(19, Buffer.from('kata-fast'))]);
    const pull = Buffer.concat([lengthDelimited(1, image), lengthDelimited(2, encodeMessage('runtime.v1.AuthConfig', { username: 'u' }))]);
    const out = replaceStringAt(pull, [1, 19], 'kata');
    const [imageEntry, auth] = wireFields(out);
    expect([imageEntry?.number, auth?.number]).toEqual([1, 2]);
    const newImage = out.subarray(imageEntry?.valueStart, imageEntry?.end);
    expect(hex(newImage)).toBe(
      hex(Buffer.concat([lengthDelimited(1, Buffer.from('busybox')), unknown, lengthDelimited(19, Buffer.from('kata'))])),
    );
  });

  test('an empty path is a programming error', () => {
    expect(() => replaceStringAt(request, [], 'x')).toThrow('non-empty path');
  });
});

describe('varintAt', () => {
  const type = 'runtime.v1.ImageStatusResponse';

  test('a uint64 at a path, exact beyond 32 bits; the last occurrence wins; undefined when unset', () => {
    const bytes = encodeMessage(type, { image: { id: 'i', size: '5000000000' } });
    expect(varintAt(bytes, [1, 4])).toBe(5_000_000_000);
    // A second occurrence of the image message merges into the first: its size wins.
    const again = Buffer.concat([bytes, encodeMessage(type, { image: { size: '7' } })]);
    expect(varintAt(again, [1, 4])).toBe(7);
    expect(varintAt(encodeMessage(type, { image: { id: 'i' } }), [1, 4])).toBeUndefined();
    expect(varintAt(Buffer.alloc(0), [1, 4])).toBeUndefined();
  });

  test('a field of another wire type under that number is not a varint', () => {
    expect(varintAt(lengthDelimited(4, Buffer.from('x')), [4])).toBeUndefined();
  });

  test('truncated bytes throw WireFormatError', () => {
    expect(() => varintAt(Buffer.from([0x20, 0xff]), [4])).toThrow(WireFormatError);
  });
});
