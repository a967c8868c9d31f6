import { FrameScanner, MessageTooLargeError, firstMessageOf, frameMessage, unframeSingle } from '../../src/proxy/grpc-frames';
import { Metadata, OutgoingMetadata } from '../../src/chain/metadata';
import { isAcceptableAuthority, pseudoHeader, upstreamFields } from '../../src/proxy/request-headers';

describe('gRPC message framing', () => {
  test('a message is framed with a zero flag and its length, and unframed back', () => {
    const framed = frameMessage(Buffer.from('hello'));
    expect(framed.toString('hex')).toBe('0000000005' + Buffer.from('hello').toString('hex'));
    expect(unframeSingle(framed)?.toString()).toBe('hello');
    expect(unframeSingle(frameMessage(Buffer.alloc(0)))?.length).toBe(0);
  });

  test.each([
    ['a compressed message', Buffer.from('0100000001ff', 'hex')],
    ['two messages', Buffer.concat([frameMessage(Buffer.from('a')), frameMessage(Buffer.from('b'))])],
    ['a truncated message', Buffer.from('0000000005aa', 'hex')],
    ['a short prefix', Buffer.from('0000', 'hex')],
  ])('unframeSingle refuses %s', (_name, body) => {
    expect(unframeSingle(body)).toBeUndefined();
  });

  test('the first message of a body, once whole, however it arrived; none while incomplete or compressed', () => {
    const body = Buffer.concat([frameMessage(Buffer.from('first')), frameMessage(Buffer.from('second'))]);
    for (const cut of [1, 5, 7, 10, 11, body.length]) {
      const parts = [body.subarray(0, cut), body.subarray(cut, 12), body.subarray(12)].filter((p) => p.length > 0);
      const received = (count: number): Buffer[] => {
        const out: Buffer[] = [];
        let left = count;
        for (const p of parts) {
          if (left <= 0) break;
          out.push(p.subarray(0, left));
          left -= p.length;
        }
        return out;
      };
      for (let bytes = 0; bytes <= body.length; bytes++) {
        const first = firstMessageOf(received(bytes), bytes);
        expect([cut, bytes, first.done ? first.message?.toString() : 'waiting']).toEqual([cut, bytes, bytes >= 10 ? 'first' : 'waiting']);
      }
    }
    const compressed = Buffer.from([1, 0, 0, 0, 1, 0x61]);
    expect(firstMessageOf([compressed], compressed.length)).toEqual({ done: true, message: undefined });
  });

  test('the scanner finds messages whatever the chunking, prefixes split included', () => {
    const messages = [Buffer.from('one'), Buffer.alloc(0), Buffer.alloc(70, 9)];
    const bytes = Buffer.concat(messages.map((m) => frameMessage(m)));
    for (let size = 1; size <= bytes.length; size++) {
      const seen: string[] = [];
      const scanner = new FrameScanner({ maxMessageBytes: 100, onMessage: (m) => seen.push(m.toString('hex')) });
      for (let at = 0; at < bytes.length; at += size) scanner.push(bytes.subarray(at, at + size));
      expect(seen).toEqual(messages.map((m) => m.toString('hex')));
    }
  });

  test('the compressed flag is reported with the message', () => {
    const flags: boolean[] = [];
    const scanner = new FrameScanner({ maxMessageBytes: 100, onMessage: (_m, compressed) => flags.push(compressed) });
    scanner.push(Buffer.from('0100000001ff0000000001aa', 'hex'));
    expect(flags).toEqual([true, false]);
  });

  test('a prefix announcing too large a message throws at once, before its bytes arrive', () => {
    const scanner = new FrameScanner({ maxMessageBytes: 10 });
    expect(() => scanner.push(Buffer.from('000000000b', 'hex'))).toThrow(MessageTooLargeError);
  });
});

describe('request headers', () => {
  const request = [':method', 'POST', ':scheme', 'http', ':path', '/a/B', ':authority', 'localhost', 'content-type', 'application/grpc'];

  test('pseudo-headers are read from the front of the list only', () => {
    expect(pseudoHeader(request, ':path')).toBe('/a/B');
    expect(pseudoHeader([...request, ':late', 'x'], ':late')).toBeUndefined();
  });

  test('the runtime gets the same list when nothing changes', () => {
    expect(upstreamFields(request, { extra: undefined, remainingMs: undefined })).toBe(request);
  });

  test('a socket-path authority is replaced, the deadline shortened, and the chain’s metadata applied', () => {
    const fields = [
      ':method',
      'POST',
      ':path',
      '/a/B',
      ':authority',
      '/run/containerd/containerd.sock',
      'grpc-timeout',
      '5S',
      'traceparent',
      'old',
    ];
    const extra = new OutgoingMetadata();
    extra.set('traceparent', 'new');
    const out = upstreamFields(fields, { extra, remainingMs: 1234.5 });
    expect(out).toEqual([':method', 'POST', ':path', '/a/B', ':authority', 'localhost', 'grpc-timeout', '1235m', 'traceparent', 'new']);
    expect(isAcceptableAuthority('unix:%2Frun%2Fx')).toBe(true);
    expect(isAcceptableAuthority('/run/x.sock')).toBe(false);
  });

  test('metadata reads keys and values as received, pseudo-headers left out', () => {
    const md = new Metadata([...request, 'x-a', '1', 'x-a', '2', 'x-b-bin', 'AAE=']);
    expect(md.get('x-a')).toBe('1');
    expect(md.getAll('x-a')).toEqual(['1', '2']);
    expect(md.get(':path')).toBeUndefined();
    expect(md.keys()).toEqual(['content-type', 'x-a', 'x-b-bin']);
    expect(md.entries()).toEqual([
      ['content-type', 'application/grpc'],
      ['x-a', '1'],
      ['x-a', '2'],
      ['x-b-bin', 'AAE='],
    ]);
  });
});
