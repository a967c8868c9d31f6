import fc from 'fast-check';
import { ConnectionError } from '../../src/proxy/http2/frames';
import { HpackDecoder } from '../../src/proxy/http2/hpack-decoder';
import { HpackEncoder, maxEncodedLength } from '../../src/proxy/http2/hpack-encoder';
import { decodeHuffman } from '../../src/proxy/http2/hpack-huffman';
import { grpcRequestFields } from '../support/raw-h2';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s/g, ''), 'hex');
const pairs = (fields: readonly string[]): [string, string][] => {
  const out: [string, string][] = [];
  for (let i = 0; i < fields.length; i += 2) out.push([fields[i] as string, fields[i + 1] as string]);
  return out;
};

function encode(encoder: HpackEncoder, fields: readonly string[], neverIndexed?: readonly number[]): Buffer {
  const out = Buffer.alloc(maxEncodedLength(fields));
  return out.subarray(0, encoder.encodeInto(fields, out, 0, neverIndexed));
}

const request1 = [':method', 'GET', ':scheme', 'http', ':path', '/', ':authority', 'www.example.com'];
const request2 = [...request1, 'cache-control', 'no-cache'];
const request3 = [
  ':method',
  'GET',
  ':scheme',
  'https',
  ':path',
  '/index.html',
  ':authority',
  'www.example.com',
  'custom-key',
  'custom-value',
];
const date1 = 'Mon, 21 Oct 2013 20:13:21 GMT';
const response1 = [':status', '302', 'cache-control', 'private', 'date', date1, 'location', 'https://www.example.com'];
const response2 = [':status', '307', 'cache-control', 'private', 'date', date1, 'location', 'https://www.example.com'];
const response3 = [
  ':status',
  '200',
  'cache-control',
  'private',
  'date',
  'Mon, 21 Oct 2013 20:13:22 GMT',
  'location',
  'https://www.example.com',
  'content-encoding',
  'gzip',
  'set-cookie',
  'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1',
];

describe('HPACK decoding: RFC 7541 Appendix C', () => {
  test.each([
    [
      'C.3 requests without Huffman coding',
      4096,
      [
        ['8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d', request1, 57],
        ['8286 84be 5808 6e6f 2d63 6163 6865', request2, 110],
        ['8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65', request3, 164],
      ],
    ],
    [
      'C.4 requests with Huffman coding',
      4096,
      [
        ['8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff', request1, 57],
        ['8286 84be 5886 a8eb 1064 9cbf', request2, 110],
        ['8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf', request3, 164],
      ],
    ],
    [
      'C.5 responses without Huffman coding, evicting from a 256-byte table',
      256,
      [
        [
          '4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
          response1,
          222,
        ],
        ['4803 3330 37c1 c0bf', response2, 222],
        [
          '88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31',
          response3,
          215,
        ],
      ],
    ],
    [
      'C.6 responses with Huffman coding, evicting from a 256-byte table',
      256,
      [
        [
          '4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3',
          response1,
          222,
        ],
        ['4883 640e ffc1 c0bf', response2, 222],
        [
          '88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07',
          response3,
          215,
        ],
      ],
    ],
  ] as const)('%s', (_name, tableSize, blocks) => {
    // The response examples assume SETTINGS_HEADER_TABLE_SIZE 256.
    const decoder = new HpackDecoder(tableSize);
    for (const [bytes, fields, size] of blocks) {
      const block = decoder.decode(hex(bytes), 1e6);
      expect(pairs(block.fields)).toEqual(pairs(fields));
      expect(decoder.tableSize).toBe(size);
    }
  });

  test('a Huffman string decodes to its bytes', () => {
    expect(decodeHuffman(hex('f1e3 c2e5 f23a 6ba0 ab90 f4ff'), 0, 12)).toBe('www.example.com');
    expect(decodeHuffman(Buffer.alloc(0), 0, 0)).toBe('');
  });
});

describe('HPACK errors are connection errors', () => {
  test.each([
    ['an indexed field with index 0', '80'],
    ['an index past the tables', 'ff 00'],
    ['a string running past the block', '40 05 61'],
    ['an integer running past the block', '7f'],
    ['an endless integer', '7f ff ff ff ff ff ff'],
    ['Huffman padding that is not all ones', '40 81 00 00'],
    ['Huffman padding of a whole byte', '40 82 1f ff 00'],
    ['a table size update above the limit', '3f e2 1f'],
    ['a table size update after a field', '82 20'],
  ])('%s', (_name, bytes) => {
    expect(() => new HpackDecoder(4096).decode(hex(bytes), 1e6)).toThrow(ConnectionError);
  });

  test('EOS inside a Huffman string', () => {
    // 30 one-bits are EOS; padded out with ones to five bytes.
    expect(() => decodeHuffman(hex('ff ff ff ff'), 0, 4)).toThrow(ConnectionError);
  });
});

describe('HPACK encoding', () => {
  const grpcRequest = (path: string, timeout: string): string[] =>
    grpcRequestFields(path, ['grpc-timeout', timeout, 'user-agent', 'grpc-go/1.60']);

  test('blocks round-trip through a decoder, call after call', () => {
    const encoder = new HpackEncoder();
    const decoder = new HpackDecoder();
    for (let i = 0; i < 200; i++) {
      const fields = grpcRequest(`/runtime.v1.RuntimeService/M${i % 7}`, `${i}m`);
      expect(decoder.decode(encode(encoder, fields), 1e6).fields).toEqual(fields);
    }
  });

  test('repeated fields shrink to index bytes; per-call values stay out of the table', () => {
    const encoder = new HpackEncoder();
    const decoder = new HpackDecoder();
    const first = encode(encoder, grpcRequest('/runtime.v1.RuntimeService/Version', '1000m'));
    decoder.decode(first, 1e6);
    const entries = decoder.tableEntries;
    const second = encode(encoder, grpcRequest('/runtime.v1.RuntimeService/Version', '999m'));
    decoder.decode(second, 1e6);
    expect(second.length).toBeLessThan(first.length / 3);
    expect(decoder.tableEntries).toBe(entries);
  });

  test('any run of blocks round-trips, whatever repeats, changes, is evicted or resized in between', () => {
    const name = fc.constantFrom(':path', ':authority', 'content-type', 'grpc-status', 'user-agent', 'x-custom', 'te', 'grpc-timeout');
    const value = fc.constantFrom('', 'a', 'application/grpc', '0', '/runtime.v1.RuntimeService/Version', 'x'.repeat(300));
    const block = fc.array(fc.tuple(name, value), { maxLength: 8 }).map((pairs) => pairs.flat());
    // Lists come back as the same arrays (as relayed ones do), or as new ones, or the table is resized.
    const step = fc.oneof(fc.nat(), block, fc.integer({ min: -4096, max: 0 }));
    fc.assert(
      fc.property(fc.array(block, { minLength: 1, maxLength: 4 }), fc.array(step, { maxLength: 40 }), (lists, steps) => {
        const encoder = new HpackEncoder();
        const decoder = new HpackDecoder();
        for (const s of steps) {
          if (typeof s === 'number' && s <= 0) encoder.setPeerTableSize(-s);
          else {
            const fields = typeof s === 'number' ? (lists[s % lists.length] as string[]) : s;
            expect(decoder.decode(encode(encoder, fields), 1e6).fields).toEqual(fields);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  test('the same bytes decode to what the table says now: a repeated block is reused only while the table is unchanged', () => {
    const decoder = new HpackDecoder();
    // 0x40 literal with indexing: new name "x-a" = "1", then "x-b" = "2"; 0xbe is dynamic index 62, the newest entry.
    decoder.decode(hex('4003 782d 6101 31'), 1e6);
    const first = decoder.decode(hex('be'), 1e6);
    expect(first.fields).toEqual(['x-a', '1']);
    expect(decoder.decode(hex('be'), 1e6)).toBe(first);
    decoder.decode(hex('4003 782d 6201 32'), 1e6);
    expect(decoder.decode(hex('be'), 1e6).fields).toEqual(['x-b', '2']);
    // A block that changes the table is decoded (and changes it) every time it comes.
    const inserting = hex('4003 782d 6301 33');
    decoder.decode(inserting, 1e6);
    decoder.decode(inserting, 1e6);
    expect(decoder.tableEntries).toBe(4);
  });

  test('eviction keeps encoder and decoder in step with a small table', () => {
    const encoder = new HpackEncoder();
    encoder.setPeerTableSize(200);
    const decoder = new HpackDecoder(4096);
    for (let i = 0; i < 100; i++) {
      const fields = [':path', `/svc/method-${i % 13}-${'x'.repeat(i % 40)}`, 'content-type', 'application/grpc'];
      expect(decoder.decode(encode(encoder, fields), 1e6).fields).toEqual(fields);
      expect(decoder.tableSize).toBeLessThanOrEqual(200);
    }
  });

  test('a table size of 0 from the peer empties the table and is announced', () => {
    const encoder = new HpackEncoder();
    const decoder = new HpackDecoder();
    decoder.decode(encode(encoder, grpcRequest('/a/b', '1m')), 1e6);
    expect(decoder.tableEntries).toBeGreaterThan(0);
    encoder.setPeerTableSize(0);
    const fields = grpcRequest('/a/b', '2m');
    expect(decoder.decode(encode(encoder, fields), 1e6).fields).toEqual(fields);
    expect(decoder.tableEntries).toBe(0);
  });

  test('never-indexed fields stay never-indexed and out of the table', () => {
    const encoder = new HpackEncoder();
    const decoder = new HpackDecoder();
    const fields = [':path', '/a/b', 'authorization', 'secret'];
    const block = decoder.decode(encode(encoder, fields, [2]), 1e6);
    expect(block.fields).toEqual(fields);
    expect(block.neverIndexed).toEqual([2]);
    expect(decoder.tableEntries).toBe(1);
  });

  test('values keep every byte, including non-ASCII ones', () => {
    const encoder = new HpackEncoder();
    const decoder = new HpackDecoder();
    const raw = Buffer.from([0x20, 0x7f, 0x80, 0xff, 0xc3, 0xa9]).toString('latin1');
    const fields = ['x-raw', raw, 'x-empty', ''];
    const decoded = decoder.decode(encode(encoder, fields), 1e6).fields;
    expect(Buffer.from(decoded[1] as string, 'latin1')).toEqual(Buffer.from([0x20, 0x7f, 0x80, 0xff, 0xc3, 0xa9]));
    expect(decoded[3]).toBe('');
  });

  test('a huge header is counted against the list limit but the table stays in step', () => {
    const encoder = new HpackEncoder();
    const decoder = new HpackDecoder();
    const big = ['x-big', 'y'.repeat(100_000), ':path', '/a/b'];
    const block = decoder.decode(encode(encoder, big), 65_536);
    expect(block.overLimit).toBe(true);
    expect(block.listBytes).toBe(5 + 100_000 + 32 + 5 + 4 + 32);
    // The next block still decodes: the indexed :path was added to the table despite the limit.
    const next = [':path', '/a/b'];
    expect(decoder.decode(encode(encoder, next), 65_536).fields).toEqual(next);
  });
});
