import type * as net from 'node:net';
import { Duplex } from 'node:stream';
import hpack from 'hpack.js';
import { encodeLiteralBlock } from './hpack-literal';

/*
 * kubelet 1.26-1.30, crictl of those versions, grpc-java and grpc-core send the socket path as `:authority`
 * over a unix socket. nghttp2 (inside node:http2) resets such streams with PROTOCOL_ERROR and Node offers no
 * switch for it, so the proxy reads the client's first header block itself:
 *  - a well-formed authority: the raw socket goes to the HTTP/2 server untouched (the fast path);
 *  - a socket-path authority: for the life of the connection, client-to-proxy header blocks are decoded,
 *    the authority replaced, and re-encoded without the dynamic table; all other bytes pass unchanged.
 * The proxy announces an empty SETTINGS frame at once, because gRPC-Go clients wait for the server's
 * preface before sending a request; the client's acknowledgement of it is removed from the byte stream so
 * the HTTP/2 server never sees an acknowledgement it did not ask for.
 */

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const EMPTY_SETTINGS = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);
const FRAME_HEADER = 9;
const TYPE_HEADERS = 1;
const TYPE_SETTINGS = 4;
const TYPE_CONTINUATION = 9;
const FLAG_ACK = 0x1;
const FLAG_END_STREAM = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;
/** The HTTP/2 default SETTINGS_MAX_FRAME_SIZE, which the proxy's server keeps. */
const MAX_FRAME_PAYLOAD = 16_384;
const REPLACEMENT_AUTHORITY = 'localhost';

export type Admit = (socket: net.Socket | Duplex) => void;

/** True for a value nghttp2 accepts as :authority (RFC 3986 authority characters). */
export function isAcceptableAuthority(value: string): boolean {
  return /^[A-Za-z0-9\-._~!$&'()*+,;=:@[\]%]*$/.test(value);
}

/** Takes a freshly accepted connection and hands it to `admit`, raw or behind a rewriting shim. */
export function acceptConnection(socket: net.Socket, admit: Admit, onError: (err: Error) => void): void {
  const inspector = new ClientFrameReader();
  let pending: Buffer = Buffer.alloc(0);
  socket.write(EMPTY_SETTINGS);
  const onData = (chunk: Buffer): void => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    let verdict: Verdict;
    try {
      verdict = inspector.inspect(pending);
    } catch (err) {
      socket.off('data', onData);
      onError(err as Error);
      socket.destroy();
      return;
    }
    if (verdict === 'undecided') return;
    socket.off('data', onData);
    socket.pause();
    if (verdict === 'pass') {
      const rest = inspector.withoutAck(pending);
      if (rest.length > 0) socket.unshift(rest);
      admit(socket);
      return;
    }
    admit(new RewritingDuplex(socket, inspector, pending, onError));
  };
  socket.on('data', onData);
  socket.on('error', onError);
}

type Verdict = 'undecided' | 'pass' | 'rewrite';

/** Parses the client-to-server byte stream frame by frame and rewrites header blocks when asked. */
class ClientFrameReader {
  private readonly decoder = hpack.decompressor.create({ table: { size: 4096 } });
  private prefaceSeen = false;
  private ackRemoved = false;
  private ackOffset = -1;
  /** Header block being assembled across HEADERS + CONTINUATION frames. */
  private block: { flags: number; streamId: number; priority: Buffer | undefined; fragments: Buffer[] } | undefined;

  /** Looks at the bytes so far (without consuming them) until the first header block and our ACK are seen. */
  inspect(bytes: Buffer): Verdict {
    if (bytes.length < PREFACE.length) return 'undecided';
    if (!bytes.subarray(0, PREFACE.length).equals(PREFACE)) throw new Error('not an HTTP/2 gRPC client (bad preface)');
    let offset = PREFACE.length;
    this.ackOffset = -1;
    const probe = hpack.decompressor.create({ table: { size: 4096 } });
    let blockParts: Buffer[] = [];
    let authorityOk: boolean | undefined;
    while (offset + FRAME_HEADER <= bytes.length) {
      const length = bytes.readUIntBE(offset, 3);
      const type = bytes[offset + 3] as number;
      const flags = bytes[offset + 4] as number;
      if (offset + FRAME_HEADER + length > bytes.length) break;
      const payload = bytes.subarray(offset + FRAME_HEADER, offset + FRAME_HEADER + length);
      if (type === TYPE_SETTINGS && flags & FLAG_ACK && this.ackOffset < 0) this.ackOffset = offset;
      if (authorityOk === undefined && (type === TYPE_HEADERS || type === TYPE_CONTINUATION)) {
        blockParts.push(type === TYPE_HEADERS ? headerFragment(payload, flags) : payload);
        if (flags & FLAG_END_HEADERS) {
          authorityOk = decodeBlock(probe, Buffer.concat(blockParts)).every(
            (f) => (f.name !== ':authority' && f.name !== 'host') || isAcceptableAuthority(f.value),
          );
          blockParts = [];
        }
      }
      offset += FRAME_HEADER + length;
    }
    if (authorityOk === undefined || this.ackOffset < 0) return 'undecided';
    return authorityOk ? 'pass' : 'rewrite';
  }

  /** The inspected bytes minus the client's acknowledgement of our early SETTINGS frame. */
  withoutAck(bytes: Buffer): Buffer {
    if (this.ackOffset < 0 || this.ackRemoved) return bytes;
    this.ackRemoved = true;
    return Buffer.concat([bytes.subarray(0, this.ackOffset), bytes.subarray(this.ackOffset + FRAME_HEADER)]);
  }

  /** Rewrites a run of whole frames; returns the bytes to pass on and how many input bytes were used. */
  rewrite(bytes: Buffer): { out: Buffer[]; used: number } {
    const out: Buffer[] = [];
    let offset = 0;
    if (!this.prefaceSeen) {
      // The inspector has checked the preface already.
      out.push(bytes.subarray(0, PREFACE.length));
      offset = PREFACE.length;
      this.prefaceSeen = true;
    }
    while (offset + FRAME_HEADER <= bytes.length) {
      const length = bytes.readUIntBE(offset, 3);
      if (offset + FRAME_HEADER + length > bytes.length) break;
      const type = bytes[offset + 3] as number;
      const flags = bytes[offset + 4] as number;
      const streamId = bytes.readUInt32BE(offset + 5) & 0x7fffffff;
      const frame = bytes.subarray(offset, offset + FRAME_HEADER + length);
      const payload = frame.subarray(FRAME_HEADER);
      offset += FRAME_HEADER + length;
      if (type === TYPE_SETTINGS && flags & FLAG_ACK && !this.ackRemoved) {
        this.ackRemoved = true;
        continue;
      }
      if (type === TYPE_HEADERS) {
        const priority = flags & FLAG_PRIORITY ? payload.subarray(flags & FLAG_PADDED ? 1 : 0).subarray(0, 5) : undefined;
        this.block = { flags, streamId, priority, fragments: [headerFragment(payload, flags)] };
      } else if (type === TYPE_CONTINUATION && this.block) {
        this.block.fragments.push(payload);
      } else {
        out.push(frame);
        continue;
      }
      if (flags & FLAG_END_HEADERS) {
        out.push(...this.reencode(this.block));
        this.block = undefined;
      }
    }
    return { out, used: offset };
  }

  private reencode(block: { flags: number; streamId: number; priority: Buffer | undefined; fragments: Buffer[] }): Buffer[] {
    const fields = decodeBlock(this.decoder, Buffer.concat(block.fragments)).map((f) =>
      (f.name === ':authority' || f.name === 'host') && !isAcceptableAuthority(f.value)
        ? { name: f.name, value: REPLACEMENT_AUTHORITY }
        : f,
    );
    const encoded = encodeLiteralBlock(fields);
    const first = block.priority ? Buffer.concat([block.priority, encoded]) : encoded;
    const frames: Buffer[] = [];
    let rest = first;
    let type = TYPE_HEADERS;
    let flags = block.flags & (FLAG_END_STREAM | FLAG_PRIORITY);
    do {
      const piece = rest.subarray(0, MAX_FRAME_PAYLOAD);
      rest = rest.subarray(piece.length);
      frames.push(frameHeader(piece.length, type, flags | (rest.length === 0 ? FLAG_END_HEADERS : 0), block.streamId), piece);
      type = TYPE_CONTINUATION;
      flags = 0;
    } while (rest.length > 0);
    return frames;
  }
}

function headerFragment(payload: Buffer, flags: number): Buffer {
  let start = 0;
  let end = payload.length;
  if (flags & FLAG_PADDED) {
    end -= payload[0] as number;
    start = 1;
  }
  if (flags & FLAG_PRIORITY) start += 5;
  if (start > end) throw new Error('malformed HEADERS frame');
  return payload.subarray(start, end);
}

function decodeBlock(decoder: hpack.Decompressor, block: Buffer): { name: string; value: string }[] {
  decoder.write(block);
  decoder.execute();
  const fields: { name: string; value: string }[] = [];
  for (let field = decoder.read(); field !== null; field = decoder.read()) fields.push({ name: field.name, value: field.value });
  return fields;
}

function frameHeader(length: number, type: number, flags: number, streamId: number): Buffer {
  const header = Buffer.alloc(FRAME_HEADER);
  header.writeUIntBE(length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId, 5);
  return header;
}

/** The HTTP/2 server's view of a rewritten connection: reads are rewritten client bytes, writes go straight out. */
class RewritingDuplex extends Duplex {
  private buffered: Buffer;

  constructor(
    private readonly socket: net.Socket,
    private readonly reader: ClientFrameReader,
    initial: Buffer,
    onError: (err: Error) => void,
  ) {
    super();
    this.buffered = initial;
    socket.on('data', (chunk: Buffer) => {
      this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
      this.drainBuffered(onError);
    });
    socket.once('end', () => this.push(null));
    socket.once('close', () => this.destroy());
    this.drainBuffered(onError);
    socket.resume();
  }

  private drainBuffered(onError: (err: Error) => void): void {
    let result: { out: Buffer[]; used: number };
    try {
      result = this.reader.rewrite(this.buffered);
    } catch (err) {
      onError(err as Error);
      this.socket.destroy();
      return;
    }
    this.buffered = this.buffered.subarray(result.used);
    for (const piece of result.out) this.push(piece);
  }

  override _read(): void {
    // Data is pushed as the socket delivers it; HTTP/2 flow control bounds what the client may send.
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.socket.write(chunk, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.socket.end(callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.socket.destroy(error ?? undefined);
    callback(error);
  }
}
