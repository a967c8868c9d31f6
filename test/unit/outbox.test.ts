import { Outbox } from '../../src/proxy/http2/outbox';

const bytes = (n: number, fill: number): Buffer => Buffer.alloc(n, fill);

describe('outbox', () => {
  test('what is queued comes out in order: small pieces copied together, large ones as they are', () => {
    const outbox = new Outbox();
    const large = bytes(5000, 2);
    outbox.append(bytes(3, 1));
    const at = outbox.at;
    outbox.reserve(4).write('abcd', at, 'latin1');
    outbox.commit(4);
    outbox.append(large);
    outbox.append(bytes(2, 3));
    expect(outbox.bytes).toBe(3 + 4 + 5000 + 2);
    const pieces = outbox.take();
    expect(pieces).toHaveLength(3);
    expect(pieces[1]).toBe(large);
    expect(Buffer.concat(pieces)).toEqual(Buffer.concat([bytes(3, 1), Buffer.from('abcd'), large, bytes(2, 3)]));
    expect(outbox.bytes).toBe(0);
    expect(outbox.take()).toEqual([]);
  });

  test('bytes handed out are never written over by what is queued after', () => {
    const outbox = new Outbox();
    outbox.append(bytes(100, 7));
    const first = outbox.take();
    for (let i = 0; i < 500; i++) outbox.append(bytes(100, i % 256));
    outbox.take();
    expect(first[0]).toEqual(bytes(100, 7));
  });

  test('a reservation larger than a chunk gets room of its own', () => {
    const outbox = new Outbox();
    const size = 40_000;
    const chunk = outbox.reserve(size);
    chunk.fill(9, outbox.at, outbox.at + size);
    outbox.commit(size);
    expect(Buffer.concat(outbox.take())).toEqual(bytes(size, 9));
  });
});
