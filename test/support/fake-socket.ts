import { EventEmitter } from 'node:events';
import type * as net from 'node:net';

/**
 * Just enough of a net.Socket for a connection object to run on without a kernel: what it writes is counted
 * (and kept when asked), what a test emits as 'data' is what it reads.
 */
export class FakeSocket extends EventEmitter {
  written = 0;
  readonly chunks: Buffer[] = [];
  destroyed = false;
  ended = false;
  readonly writableLength = 0;

  constructor(private readonly keep = false) {
    super();
  }

  asSocket(): net.Socket {
    return this as unknown as net.Socket;
  }

  write(chunk: Buffer): boolean {
    if (this.ended || this.destroyed) throw new Error('write after end');
    this.written += chunk.length;
    if (this.keep) this.chunks.push(chunk);
    return true;
  }

  end(): this {
    this.ended = true;
    return this;
  }

  destroy(): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.emit('close', false);
    return this;
  }

  cork(): void {}
  uncork(): void {}
  pause(): this {
    return this;
  }
  resume(): this {
    return this;
  }
  setTimeout(): this {
    return this;
  }
  setNoDelay(): this {
    return this;
  }
}
