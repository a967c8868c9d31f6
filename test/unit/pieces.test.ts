import { JOIN_FROM_PIECES, appendPiece, joinSmall } from '../../src/proxy/http2/pieces';

const total = (parts: readonly Buffer[]): Buffer => Buffer.concat(parts);

describe('held pieces', () => {
  test('a short list keeps the pieces as they arrived (no copy)', () => {
    const pieces = Array.from({ length: JOIN_FROM_PIECES }, (_, i) => Buffer.from([i]));
    const parts: Buffer[] = [];
    for (const piece of pieces) appendPiece(parts, piece);
    expect(parts).toHaveLength(pieces.length);
    parts.forEach((part, i) => expect(part).toBe(pieces[i]));
  });

  test('200,000 one-byte pieces are held in a few buffers, bytes and order kept', () => {
    const parts: Buffer[] = [];
    const expected = Buffer.alloc(200_000);
    for (let i = 0; i < expected.length; i++) {
      expected[i] = i & 0xff;
      appendPiece(parts, Buffer.from([i & 0xff]));
    }
    expect(total(parts).equals(expected)).toBe(true);
    expect(parts.length).toBeLessThan(JOIN_FROM_PIECES + expected.length / (8 * 1024));
  });

  test('large pieces are never copied; a small one after a large one stays a piece (an object per KiB at most)', () => {
    const parts: Buffer[] = [];
    const large = Array.from({ length: 100 }, () => Buffer.alloc(2048, 1));
    for (const piece of large) {
      appendPiece(parts, piece);
      appendPiece(parts, Buffer.from([2]));
    }
    for (const piece of large) expect(parts).toContain(piece);
    expect(parts).toHaveLength(200);
    expect(total(parts).length).toBe(100 * 2049);
  });

  test('a buffer the proxy did not allocate is never written past its view', () => {
    const received = Buffer.from('abcdefgh');
    const view = received.subarray(0, 2);
    const joined = joinSmall(view, Buffer.from('XY'));
    expect(joined?.toString()).toBe('abXY');
    expect(received.toString()).toBe('abcdefgh');
  });
});
