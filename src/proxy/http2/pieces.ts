/**
 * Received bytes held in pieces (views of what the socket delivered, never copied in the usual case). A peer that
 * sends one-byte frames would make the proxy hold an object per byte; once a list is long, small pieces are copied
 * together instead, so what is held costs about its size.
 */

/** Pieces below this size are copied together once a list is long. */
const SMALL_PIECE = 1024;
/** Lists shorter than this are never copied: a request in one or a few frames stays as it arrived. */
export const JOIN_FROM_PIECES = 8;
const FIRST_CAPACITY = 256;
const MAX_CAPACITY = 16 * 1024;

/** Buffers the proxy allocated to join pieces into: only these are ever written past their end. */
const joinBuffers = new WeakSet<ArrayBufferLike>();

/**
 * `last` with `piece` behind it, when it is worth copying them together; undefined when `piece` should be kept as
 * a piece of its own. `last` must not be used afterwards (its buffer may have been written to).
 */
export function joinSmall(last: Buffer, piece: Buffer): Buffer | undefined {
  if (piece.length >= SMALL_PIECE) return undefined;
  const size = last.length + piece.length;
  const own = joinBuffers.has(last.buffer) && last.byteOffset === 0;
  if (own && size <= last.buffer.byteLength) {
    const whole = Buffer.from(last.buffer, 0, last.buffer.byteLength);
    piece.copy(whole, last.length);
    return whole.subarray(0, size);
  }
  if (own ? last.buffer.byteLength >= MAX_CAPACITY : last.length >= SMALL_PIECE) return undefined;
  // Capacities double up to MAX_CAPACITY, which `size` never exceeds here: copying stays linear overall.
  let capacity = own ? last.buffer.byteLength * 2 : FIRST_CAPACITY;
  while (capacity < size) capacity *= 2;
  const joined = Buffer.allocUnsafeSlow(Math.min(capacity, MAX_CAPACITY));
  joinBuffers.add(joined.buffer);
  last.copy(joined, 0);
  piece.copy(joined, last.length);
  return joined.subarray(0, size);
}

/** Appends `piece` to `parts`, copying it onto the last piece when both are small and the list is long. */
export function appendPiece(parts: Buffer[], piece: Buffer): void {
  const last = parts[parts.length - 1];
  const joined = last !== undefined && parts.length >= JOIN_FROM_PIECES ? joinSmall(last, piece) : undefined;
  if (joined === undefined) parts.push(piece);
  else parts[parts.length - 1] = joined;
}
