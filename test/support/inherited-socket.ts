import { spawn } from 'node:child_process';

/*
 * A child process binds and listens, then hands the listening socket over (SCM_RIGHTS, through the IPC channel)
 * and closes its own copy. The descriptor arrives without a handle listening on it here, as one from systemd does:
 * a socket this process bound itself would already have a handle accepting on it.
 */
const BIND_AND_HAND_OVER = `
const fs = require('node:fs');
const net = require('node:net');
const socketPath = process.argv[1];
const server = net.createServer();
// Bound under another name and renamed: closing the server unlinks only that name, so the file stays.
server.listen(socketPath + '.binding', () => {
  fs.renameSync(socketPath + '.binding', socketPath);
  process.send('listening', server._handle, () => server.close(() => process.disconnect()));
});
`;

/** A descriptor listening on `socketPath`, as socket activation passes one in; the file stays after it closes. */
export function inheritedSocket(socketPath: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', BIND_AND_HAND_OVER, socketPath], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    child.once('error', reject);
    // The channel closes after the messages sent on it: no message by then, none is coming.
    child.once('disconnect', () => reject(new Error('the child process did not hand a listening socket over')));
    child.once('message', (_message, handle: unknown) => {
      const fd = (handle as { fd?: unknown } | undefined)?.fd;
      if (typeof fd === 'number' && fd >= 0) resolve(fd);
      else reject(new Error('no listening descriptor came with the message'));
    });
  });
}
