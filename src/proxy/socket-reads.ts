import * as net from 'node:net';

/**
 * A socket whose reads land in fresh memory carved from shared slabs. Node would otherwise zero a 64 KB buffer
 * for every read, copy what was read into another one and pass that through its stream machinery: for a large
 * answer arriving in many small reads, that was most of what relaying it cost. A slab's memory is never reused,
 * so every chunk stays valid for as long as something holds a view of it (the frame reader's promise); a slab
 * goes once nothing does.
 */
const SLAB_BYTES = 256 * 1024;
/** A read gets at least this much room: a fresh slab when less is left. */
const READ_ROOM_BYTES = 64 * 1024;

class Slabs {
  private slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
  private at = 0;

  /** Room for the next read. */
  room(): Buffer {
    if (SLAB_BYTES - this.at < READ_ROOM_BYTES) {
      this.slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
      this.at = 0;
    }
    return this.slab.subarray(this.at);
  }

  /** The `bytes` just read into the room handed out last; the next room starts after them. */
  take(bytes: number): Buffer {
    const chunk = this.slab.subarray(this.at, this.at + bytes);
    this.at += bytes;
    return chunk;
  }
}

/** Connects to a unix socket; every chunk read goes to `onChunk` (no 'data' events). */
export function connectReading(socketPath: string, onChunk: (chunk: Buffer) => void): net.Socket {
  const slabs = new Slabs();
  return net.connect({
    path: socketPath,
    onread: {
      buffer: () => slabs.room(),
      // Never paused here: HTTP/2 flow control paces the runtime.
      callback: (bytes: number) => {
        onChunk(slabs.take(bytes));
        return true;
      },
    },
  });
}
