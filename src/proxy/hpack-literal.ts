/**
 * HPACK output without the dynamic table or Huffman coding ("literal header field without indexing",
 * RFC 7541 §6.2.2): the receiver's table never changes, so blocks can be rewritten one at a time.
 */
export function encodeLiteralBlock(fields: readonly { name: string; value: string }[]): Buffer {
  const parts: Buffer[] = [];
  for (const { name, value } of fields) {
    parts.push(Buffer.from([0x00]), encodeString(name), encodeString(value));
  }
  return Buffer.concat(parts);
}

function encodeString(text: string): Buffer {
  const bytes = Buffer.from(text, 'latin1');
  return Buffer.concat([encodeInteger(bytes.length, 7, 0x00), bytes]);
}

/** N-bit prefix integer; `highBits` are the bits above the prefix in the first byte. */
export function encodeInteger(value: number, prefixBits: number, highBits: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([highBits | value]);
  const out = [highBits | max];
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return Buffer.from(out);
}
