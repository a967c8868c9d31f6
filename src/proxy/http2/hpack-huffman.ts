import { ConnectionError, ErrorCode } from './frames';
import { EOS, huffmanCodes } from './hpack-static';

/*
 * Huffman decoding four bits at a time: a state is an inner node of the code tree, and a table gives, for each
 * state and nibble, the next state and the symbol completed on the way (at most one: no code is shorter than
 * five bits). Built once at load from the code lengths.
 */

interface Tables {
  readonly next: Uint16Array;
  /** Symbol + 1 completed by the step, 0 if none; -1 if the step decodes EOS (an error). */
  readonly emit: Int16Array;
  /** States in which a string may end: reached from the root by at most seven 1 bits (the padding). */
  readonly canEnd: Uint8Array;
}

function buildTables(): Tables {
  // Tree nodes: children in pairs; a leaf is stored as -(symbol + 1).
  const children: number[] = [0, 0];
  for (const [symbol, [code, length]] of huffmanCodes().entries()) {
    let node = 0;
    for (let bit = length - 1; bit >= 0; bit--) {
      const slot = node * 2 + (Math.floor(code / 2 ** bit) & 1);
      if (bit === 0) {
        children[slot] = -(symbol + 1);
      } else {
        if (children[slot] === 0) {
          children[slot] = children.length / 2;
          children.push(0, 0);
        }
        node = children[slot] as number;
      }
    }
  }
  const states = children.length / 2;
  const next = new Uint16Array(states * 16);
  const emit = new Int16Array(states * 16);
  const canEnd = new Uint8Array(states);
  // The padding path: the root and up to seven 1 bits below it.
  canEnd[0] = 1;
  for (let node = 0, depth = 1; depth <= 7; depth++) {
    const child = children[node * 2 + 1] as number;
    if (child <= 0) break;
    node = child;
    canEnd[node] = 1;
  }
  for (let state = 0; state < states; state++) {
    for (let nibble = 0; nibble < 16; nibble++) {
      let node = state;
      let emitted = 0;
      for (let bit = 3; bit >= 0; bit--) {
        const child = children[node * 2 + ((nibble >> bit) & 1)] as number;
        if (child < 0) {
          const symbol = -child - 1;
          emitted = symbol === EOS ? -1 : symbol + 1;
          node = 0;
          if (symbol === EOS) break;
        } else node = child;
      }
      next[state * 16 + nibble] = node;
      emit[state * 16 + nibble] = emitted;
    }
  }
  return { next, emit, canEnd };
}

const tables = buildTables();
let scratch = Buffer.allocUnsafe(1024);

/** Decodes a Huffman-coded string literal (RFC 7541 §5.2) into a latin1 string (bytes kept as they are). */
export function decodeHuffman(bytes: Buffer, start: number, end: number): string {
  const { next, emit, canEnd } = tables;
  const most = Math.ceil(((end - start) * 8) / 5);
  if (scratch.length < most) scratch = Buffer.allocUnsafe(most);
  let out = 0;
  let state = 0;
  // Two nibbles per byte, high first; written out to keep the loop allocation-free.
  for (let i = start; i < end; i++) {
    const byte = bytes[i] as number;
    let at = state * 16 + (byte >> 4);
    let symbol = emit[at] as number;
    if (symbol < 0) throw eosError();
    if (symbol > 0) scratch[out++] = symbol - 1;
    state = next[at] as number;
    at = state * 16 + (byte & 0xf);
    symbol = emit[at] as number;
    if (symbol < 0) throw eosError();
    if (symbol > 0) scratch[out++] = symbol - 1;
    state = next[at] as number;
  }
  if (!canEnd[state]) throw new ConnectionError(ErrorCode.COMPRESSION_ERROR, 'Huffman string has invalid padding');
  return scratch.toString('latin1', 0, out);
}

function eosError(): ConnectionError {
  return new ConnectionError(ErrorCode.COMPRESSION_ERROR, 'Huffman string contains EOS');
}
