import { readFileSync, statSync } from 'node:fs';
import { errorMessage } from '../errors';

/** Fewer bytes than this would make the HMAC guessable; `openssl rand -hex 32` gives 64. */
export const MIN_KEY_BYTES = 32;

/**
 * The key of a keyed audit chain: the file's bytes, without a trailing newline. Refused when short, or when
 * other users may read or write the file (whoever can read it can forge records). Errors name the file, never
 * its content.
 */
export function readAuditKey(file: string): Buffer {
  let mode: number;
  let bytes: Buffer;
  try {
    mode = statSync(file).mode;
    bytes = readFileSync(file);
  } catch (err) {
    throw new Error(`cannot read the key file: ${errorMessage(err)}`, { cause: err });
  }
  if ((mode & 0o006) !== 0) {
    throw new Error(`the key file is accessible to other users (mode ${(mode & 0o777).toString(8).padStart(4, '0')}): chmod o-rw it`);
  }
  let end = bytes.length;
  while (end > 0 && (bytes[end - 1] === 0x0a || bytes[end - 1] === 0x0d)) end--;
  if (end < MIN_KEY_BYTES)
    throw new Error(`the key file holds ${end} bytes; at least ${MIN_KEY_BYTES} are needed (e.g. openssl rand -hex 32)`);
  return Buffer.from(bytes.subarray(0, end));
}
