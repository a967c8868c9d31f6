import { randomBytes } from 'node:crypto';
import * as http from 'node:http';
import type { Duplex } from 'node:stream';

export interface ExecOutput {
  readonly stdout: string;
  readonly stderr: string;
  /** The JSON status the streaming server sends on the error channel when the command ends. */
  readonly status: string;
}

const PROTOCOL = 'v4.channel.k8s.io';

/**
 * Runs the exec session behind a CRI `Exec` URL the way kubectl does, over a WebSocket with the
 * `v4.channel.k8s.io` subprotocol (a channel byte before every frame: 1 stdout, 2 stderr, 3 status).
 */
export function execOverWebSocket(url: string, timeoutMs = 15_000): Promise<ExecOutput> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: 'GET',
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
        'Sec-WebSocket-Protocol': PROTOCOL,
      },
      timeout: timeoutMs,
    });
    req.on('timeout', () => req.destroy(new Error(`exec session at ${url} timed out`)));
    req.on('error', reject);
    req.on('response', (res) => reject(new Error(`exec URL answered HTTP ${res.statusCode ?? '?'} instead of upgrading`)));
    req.on('upgrade', (_res, socket: Duplex, head: Buffer) => {
      const channels: Buffer[][] = [[], [], [], []];
      let pending = head;
      const finish = (): void => {
        socket.destroy();
        const text = (i: number): string => Buffer.concat(channels[i] ?? []).toString();
        resolve({ stdout: text(1), stderr: text(2), status: text(3) });
      };
      const onData = (chunk: Buffer): void => {
        pending = Buffer.concat([pending, chunk]);
        for (;;) {
          const frame = readFrame(pending);
          if (!frame) return;
          pending = pending.subarray(frame.length);
          if (frame.opcode === 8) {
            finish();
            return;
          }
          if ((frame.opcode === 1 || frame.opcode === 2) && frame.payload.length > 0) {
            channels[frame.payload[0] as number]?.push(frame.payload.subarray(1));
          }
        }
      };
      socket.on('data', onData);
      socket.on('end', finish);
      socket.on('error', reject);
      if (head.length > 0) onData(Buffer.alloc(0));
    });
    req.end();
  });
}

/** An unmasked server frame: opcode, payload and how many bytes it took. */
function readFrame(buf: Buffer): { opcode: number; payload: Buffer; length: number } | undefined {
  if (buf.length < 2) return undefined;
  const opcode = (buf[0] as number) & 0x0f;
  let length = (buf[1] as number) & 0x7f;
  let offset = 2;
  if (length === 126) {
    if (buf.length < 4) return undefined;
    length = buf.readUInt16BE(2);
    offset = 4;
  } else if (length === 127) {
    if (buf.length < 10) return undefined;
    length = Number(buf.readBigUInt64BE(2));
    offset = 10;
  }
  if (buf.length < offset + length) return undefined;
  return { opcode, payload: buf.subarray(offset, offset + length), length: offset + length };
}
