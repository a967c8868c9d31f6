import * as fs from 'node:fs';
import * as net from 'node:net';
import { CONNECTION_PREFACE, Flag, FrameReader, FrameType } from '../../src/proxy/http2/frames';
import { SETTINGS_ACK, frameHeader, settingsFrame } from '../../src/proxy/http2/frame-writers';
import { HpackDecoder } from '../../src/proxy/http2/hpack-decoder';
import { HpackEncoder, maxEncodedLength } from '../../src/proxy/http2/hpack-encoder';

/** What a scripted runtime does with a request; it writes raw frames through `reply`. */
export type Script = (streamId: number, fields: readonly string[], reply: RuntimeReply) => void;

export interface RuntimeReply {
  frame(type: number, flags: number, streamId: number, payload?: Buffer): void;
  headers(streamId: number, fields: readonly string[], endStream: boolean): void;
  raw(bytes: Buffer): void;
}

/**
 * A runtime that speaks HTTP/2 by hand, for tests of what the proxy does when a runtime misbehaves: it answers
 * the handshake, then hands each request's headers to the script, which writes whatever frames it likes.
 */
export class RawRuntime {
  private readonly server: net.Server;
  readonly connections: net.Socket[] = [];

  constructor(
    readonly socketPath: string,
    private readonly script: Script,
  ) {
    this.server = net.createServer((socket) => this.serve(socket));
  }

  start(): Promise<void> {
    fs.rmSync(this.socketPath, { force: true });
    return new Promise((resolve) => this.server.listen(this.socketPath, resolve));
  }

  stop(): Promise<void> {
    for (const s of this.connections) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private serve(socket: net.Socket): void {
    this.connections.push(socket);
    socket.on('error', () => undefined);
    const encoder = new HpackEncoder();
    const decoder = new HpackDecoder();
    const reply: RuntimeReply = {
      frame: (type, flags, streamId, payload = Buffer.alloc(0)) => {
        if (!socket.destroyed) socket.write(Buffer.concat([frameHeader(payload.length, type, flags, streamId), payload]));
      },
      headers: (streamId, fields, endStream) => {
        const out = Buffer.alloc(maxEncodedLength(fields));
        const block = out.subarray(0, encoder.encodeInto(fields, out, 0));
        reply.frame(FrameType.HEADERS, Flag.END_HEADERS | (endStream ? Flag.END_STREAM : 0), streamId, block);
      },
      raw: (bytes) => {
        if (!socket.destroyed) socket.write(bytes);
      },
    };
    socket.write(settingsFrame([]));
    let preface = 0;
    const reader = new FrameReader(
      {
        onFrame: (type, flags, streamId, payload) => {
          if (type === FrameType.SETTINGS && !(flags & Flag.ACK)) socket.write(SETTINGS_ACK);
          if (type === FrameType.HEADERS) this.script(streamId, decoder.decode(payload, 1 << 20).fields, reply);
        },
      },
      1 << 20,
    );
    socket.on('data', (chunk: Buffer) => {
      let bytes = chunk;
      if (preface < CONNECTION_PREFACE.length) {
        const take = Math.min(CONNECTION_PREFACE.length - preface, bytes.length);
        preface += take;
        bytes = bytes.subarray(take);
      }
      try {
        reader.push(bytes);
      } catch {
        socket.destroy();
      }
    });
  }
}
