/**
 * The fixed parts of HPACK (RFC 7541): the static table (Appendix A) and the Huffman code (Appendix B).
 * The Huffman code is canonical, so the code length of each symbol determines the whole code.
 */

const NAME_ONLY = [
  'accept-charset',
  ['accept-encoding', 'gzip, deflate'],
  'accept-language',
  'accept-ranges',
  'accept',
  'access-control-allow-origin',
  'age',
  'allow',
  'authorization',
  'cache-control',
  'content-disposition',
  'content-encoding',
  'content-language',
  'content-length',
  'content-location',
  'content-range',
  'content-type',
  'cookie',
  'date',
  'etag',
  'expect',
  'expires',
  'from',
  'host',
  'if-match',
  'if-modified-since',
  'if-none-match',
  'if-range',
  'if-unmodified-since',
  'last-modified',
  'link',
  'location',
  'max-forwards',
  'proxy-authenticate',
  'proxy-authorization',
  'range',
  'referer',
  'refresh',
  'retry-after',
  'server',
  'set-cookie',
  'strict-transport-security',
  'transfer-encoding',
  'user-agent',
  'vary',
  'via',
  'www-authenticate',
] as const;

/** Static table entries, index 1 first: [name, value]. */
export const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  ...['200', '204', '206', '304', '400', '404', '500'].map((v): [string, string] => [':status', v]),
  ...NAME_ONLY.map((e): [string, string] => (typeof e === 'string' ? [e, ''] : [e[0], e[1]])),
];

/** Code length in bits of each symbol 0..256 (256 is EOS), as `'0' + length`. */
const CODE_LENGTHS =
  '=GLLLLLLLHNLLNLLLLLLLLNLLLLLLLLL6::<=68;::8;8666555666666678?6<:=67777777777777777777777878=C=>6?56565666577666' +
  '567655677777?;>=LDFDDFFFGFGGGGGHGHHFGHGGGGEFGFGGHFEDFFGGEGFFHEFGGEEFEGFGGDFFFGFFGJJDCFGFIJJJKKJHICEJKKJKHEEJJ' +
  'LKKKDHDEFEEGFFIIHHJGJKJJKKKKKLKKKKKJN';

export const EOS = 256;

/** Huffman codes as [code, length] per symbol, assigned canonically (by length, then symbol). */
export function huffmanCodes(): readonly (readonly [code: number, length: number])[] {
  const lengths: number[] = [];
  for (let i = 0; i < CODE_LENGTHS.length; i++) lengths.push(CODE_LENGTHS.charCodeAt(i) - 48);
  const order = lengths.map((length, symbol) => ({ length, symbol })).sort((a, b) => a.length - b.length || a.symbol - b.symbol);
  const codes: [number, number][] = new Array<[number, number]>(lengths.length);
  let code = 0;
  let previous = order[0]?.length ?? 0;
  for (const { length, symbol } of order) {
    code *= 2 ** (length - previous);
    previous = length;
    codes[symbol] = [code, length];
    code++;
  }
  return codes;
}
