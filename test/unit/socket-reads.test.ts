import * as net from 'node:net';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { connectReading } from '../../src/proxy/socket-reads';
import { makeTempDir } from '../support/proxy-harness';

test('every chunk read stays as it was read while later reads come in', async () => {
  const dir = makeTempDir('cri-proxy-reads-');
  const path = join(dir, 'peer.sock');
  const sent = Buffer.from(Array.from({ length: 3 * 1024 * 1024 }, (_, i) => (i * 7) % 251));
  const server = net.createServer((socket) => socket.end(sent));
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const chunks: Buffer[] = [];
  const socket = connectReading(path, (chunk) => chunks.push(chunk));
  await new Promise<void>((resolve) => socket.once('end', resolve));
  socket.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
  // Held chunks were not overwritten by the reads after them: together they are what was sent.
  expect(chunks.length).toBeGreaterThan(1);
  expect(Buffer.concat(chunks).equals(sent)).toBe(true);
});
