/** Holding a request for interceptors, apart from relaying it: its parts, its whole body, its first message. */
import type { ProxyError } from '../errors';
import { firstMessageOf } from './grpc-frames';
import { appendPiece } from './http2/pieces';

/**
 * A request the proxy holds for its interceptors: its bytes as they come, whole once the client ends it (`done`),
 * and its first message as soon as that is complete, for a chain that only peeks.
 */
export class HeldRequest {
  readonly parts: Buffer[] = [];
  bytes = 0;
  readonly done: Promise<Buffer>;
  /** Ends the request (with `error`, or whole); undefined once it has ended. */
  settle: ((error?: ProxyError) => void) | undefined;
  /** The first message, once asked for. */
  private first: Promise<Buffer | undefined> | undefined;
  private onFirst: ((message: Buffer | undefined) => void) | undefined;

  constructor() {
    this.done = new Promise<Buffer>((resolve, reject) => {
      this.settle = (error) => {
        this.settle = undefined;
        this.checkFirst(true);
        if (error) reject(error);
        else resolve(this.parts.length === 1 ? (this.parts[0] as Buffer) : Buffer.concat(this.parts, this.bytes));
      };
    });
  }

  add(data: Buffer): void {
    appendPiece(this.parts, data);
    this.bytes += data.length;
    this.checkFirst();
  }

  firstMessage(): Promise<Buffer | undefined> {
    return (this.first ??= new Promise((resolve) => {
      this.onFirst = resolve;
      this.checkFirst();
    }));
  }

  /** Hands out the first message once it is whole (or, at the end, that there is none). */
  private checkFirst(ended = false): void {
    const onFirst = this.onFirst;
    if (onFirst === undefined) return;
    const first = firstMessageOf(this.parts, this.bytes);
    if (!first.done && !ended) return;
    this.onFirst = undefined;
    onFirst(first.done ? first.message : undefined);
  }
}
