/**
 * Follows gRPC length-prefixed message boundaries in a byte stream without copying it: the proxy forwards
 * chunks as they arrive and only needs to know where messages start and how long they are (to enforce the
 * size limit and, when an interceptor asks, to hand out whole messages).
 */
export interface FrameScannerOptions {
  readonly maxMessageBytes: number;
  /** Called with each whole message (prefix excluded) when somebody wants messages; copies only then. */
  readonly onMessage?: ((message: Buffer, compressed: boolean) => void) | undefined;
}

export class MessageTooLargeError extends Error {
  override readonly name = 'MessageTooLargeError';
  constructor(
    readonly size: number,
    readonly limit: number,
  ) {
    super(`message of ${size} bytes exceeds the limit of ${limit} bytes`);
  }
}

const PREFIX_BYTES = 5;

export class FrameScanner {
  private prefixFilled = 0;
  /** Only for a prefix split across chunks; allocated the first time that happens. */
  private prefix: Buffer | undefined;
  private bodyRemaining = 0;
  /** The message being collected, only when somebody wants messages. */
  private parts: Buffer[] | undefined;
  private compressed = false;

  constructor(private readonly options: FrameScannerOptions) {}

  /** Consumes one chunk; throws MessageTooLargeError as soon as a prefix announces too large a message. */
  push(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.bodyRemaining > 0) {
        const take = Math.min(this.bodyRemaining, chunk.length - offset);
        if (this.options.onMessage) (this.parts ??= []).push(chunk.subarray(offset, offset + take));
        this.bodyRemaining -= take;
        offset += take;
        if (this.bodyRemaining === 0) this.completeMessage();
        continue;
      }
      // Fast path: a whole prefix inside this chunk.
      if (this.prefixFilled === 0 && chunk.length - offset >= PREFIX_BYTES) {
        this.startMessage(chunk[offset] !== 0, chunk.readUInt32BE(offset + 1));
        offset += PREFIX_BYTES;
        continue;
      }
      const prefix = (this.prefix ??= Buffer.alloc(PREFIX_BYTES));
      const take = Math.min(PREFIX_BYTES - this.prefixFilled, chunk.length - offset);
      chunk.copy(prefix, this.prefixFilled, offset, offset + take);
      this.prefixFilled += take;
      offset += take;
      if (this.prefixFilled === PREFIX_BYTES) {
        this.prefixFilled = 0;
        this.startMessage(prefix[0] !== 0, prefix.readUInt32BE(1));
      }
    }
  }

  private startMessage(compressed: boolean, length: number): void {
    this.compressed = compressed;
    if (length > this.options.maxMessageBytes) throw new MessageTooLargeError(length, this.options.maxMessageBytes);
    this.bodyRemaining = length;
    if (length === 0) this.completeMessage();
  }

  private completeMessage(): void {
    const onMessage = this.options.onMessage;
    if (!onMessage) return;
    const parts = this.parts;
    this.parts = undefined;
    const message = parts === undefined ? Buffer.alloc(0) : parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
    onMessage(message, this.compressed);
  }
}

/** Frames one message with the gRPC prefix (uncompressed). */
export function frameMessage(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(PREFIX_BYTES + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, PREFIX_BYTES);
  return out;
}

/**
 * The first message of a framed body received so far in `parts` (`bytes` in all): `done` once it is whole, its
 * message then undefined when it is compressed (the proxy reads none).
 */
export function firstMessageOf(
  parts: readonly Buffer[],
  bytes: number,
): { readonly done: false } | { readonly done: true; readonly message: Buffer | undefined } {
  if (bytes < PREFIX_BYTES) return { done: false };
  const head = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, Math.min(bytes, PREFIX_BYTES + 1024));
  const length = PREFIX_BYTES + head.readUInt32BE(1);
  if (bytes < length) return { done: false };
  if (head[0] !== 0) return { done: true, message: undefined };
  const whole = head.length >= length ? head : Buffer.concat(parts, length);
  // A copy: held pieces may be joined into later (see pieces.ts), and the message outlives the call's holding.
  return { done: true, message: Buffer.from(whole.subarray(PREFIX_BYTES, length)) };
}

/** Reads the single message of a framed unary body; undefined when it is not exactly one uncompressed message. */
export function unframeSingle(body: Buffer): Buffer | undefined {
  if (body.length < PREFIX_BYTES || body[0] !== 0) return undefined;
  const length = body.readUInt32BE(1);
  if (body.length !== PREFIX_BYTES + length) return undefined;
  return body.subarray(PREFIX_BYTES);
}
