/**
 * A stand-in for systemd's socket activation, run as its own process. It holds the listening socket it was
 * handed as fd 3, never accepting on it, and starts a program on it the way systemd starts a service: the
 * socket as fd 3, LISTEN_FDS=1, LISTEN_FDNAMES, and LISTEN_PID set to the started process's own pid.
 *   node socket-activation-parent.js LOG_FILE FD_NAME PROGRAM [ARG...]
 * Controlled over IPC: {cmd:'start'} → {event:'started',pid}; {cmd:'signal',signal}; each exit →
 * {event:'exited',pid,code,signal}.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync } from 'node:fs';

const [logFile, fdName, program, ...args] = process.argv.slice(2);
if (logFile === undefined || fdName === undefined || program === undefined) {
  process.stderr.write('usage: socket-activation-parent LOG_FILE FD_NAME PROGRAM [ARG...]\n');
  process.exit(2);
}
const log = openSync(logFile, 'a');
let child: ChildProcess | undefined;

type Command = { cmd: 'start' } | { cmd: 'signal'; signal: NodeJS.Signals };

process.on('message', (message: Command) => {
  if (message.cmd === 'start') {
    const env = { ...process.env, LISTEN_FDS: '1', LISTEN_FDNAMES: fdName };
    // LISTEN_PID must be the started process's pid, known only once it runs: the shell sets it and execs.
    const started = spawn('/bin/sh', ['-c', 'LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"', program, ...args], {
      env,
      stdio: ['ignore', log, log, 3],
    });
    child = started;
    started.once('exit', (code, signal) => {
      process.send?.({ event: 'exited', pid: started.pid, code, signal });
    });
    process.send?.({ event: 'started', pid: started.pid });
  } else {
    child?.kill(message.signal);
  }
});
process.on('disconnect', () => {
  child?.kill('SIGKILL');
  process.exit(0);
});
