import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { silentLogger } from '../../src/log';
import { criSocket, notifyReadyOnceRuntimeAnswers, takePassedSockets } from '../../src/lifecycle/systemd';

describe('sd_listen_fds', () => {
  test('takes the sockets passed to this process, names included, and clears the variables', () => {
    const env: NodeJS.ProcessEnv = { LISTEN_PID: '42', LISTEN_FDS: '2', LISTEN_FDNAMES: 'metrics:cri-proxy', OTHER: 'x' };
    expect(takePassedSockets(env, 42)).toEqual([
      { fd: 3, name: 'metrics' },
      { fd: 4, name: 'cri-proxy' },
    ]);
    expect(env).toEqual({ OTHER: 'x' });
  });

  test('sockets meant for another process, or none, are not taken', () => {
    expect(takePassedSockets({ LISTEN_PID: '41', LISTEN_FDS: '1' }, 42)).toEqual([]);
    expect(takePassedSockets({}, 42)).toEqual([]);
    expect(takePassedSockets({ LISTEN_FDS: '1' }, 42)).toEqual([]);
  });

  test('without names each socket is "unknown", as sd_listen_fds_with_names reports it', () => {
    expect(takePassedSockets({ LISTEN_PID: '7', LISTEN_FDS: '1' }, 7)).toEqual([{ fd: 3, name: 'unknown' }]);
  });

  test('malformed variables are an error naming the variable', () => {
    expect(() => takePassedSockets({ LISTEN_PID: 'self', LISTEN_FDS: '1' }, 7)).toThrow(/LISTEN_PID "self"/);
    expect(() => takePassedSockets({ LISTEN_PID: '7', LISTEN_FDS: 'one' }, 7)).toThrow(/LISTEN_FDS "one"/);
  });

  test('the CRI socket is the only one passed, or the one named cri-proxy', () => {
    expect(criSocket([])).toBeUndefined();
    expect(criSocket([{ fd: 3, name: 'unknown' }])).toEqual({ fd: 3, name: 'unknown' });
    expect(
      criSocket([
        { fd: 3, name: 'metrics' },
        { fd: 4, name: 'cri-proxy' },
      ]),
    ).toEqual({ fd: 4, name: 'cri-proxy' });
    expect(() =>
      criSocket([
        { fd: 3, name: 'a' },
        { fd: 4, name: 'b' },
      ]),
    ).toThrow(/FileDescriptorName=cri-proxy/);
  });
});

describe('sd_notify', () => {
  let dir: string;
  let record: string;
  let env: NodeJS.ProcessEnv;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cri-proxy-notify-'));
    record = path.join(dir, 'notified');
    // A systemd-notify that records what it was asked to send.
    fs.writeFileSync(path.join(dir, 'systemd-notify'), `#!/bin/sh\necho "$NOTIFY_SOCKET $*" >> "${record}"\n`, { mode: 0o755 });
    env = { ...process.env, PATH: `${dir}:${process.env['PATH'] ?? ''}`, NOTIFY_SOCKET: '/run/systemd/notify' };
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const notified = (): string[] => (fs.existsSync(record) ? fs.readFileSync(record, 'utf8').trim().split('\n') : []);

  test('READY=1 goes out only once the runtime answers, after a status while it does not', async () => {
    const answers = [
      { ready: false, detail: 'connect ENOENT /run/containerd/containerd.sock' },
      { ready: false, detail: 'connect ENOENT /run/containerd/containerd.sock' },
      { ready: true, detail: 'runtime "containerd" answers' },
    ];
    let asked = 0;
    const source = {
      readiness: () => {
        const answer = answers[Math.min(asked++, answers.length - 1)];
        if (answer === undefined) throw new Error('no answer');
        return Promise.resolve(answer);
      },
    };
    await notifyReadyOnceRuntimeAnswers(source, silentLogger, new AbortController().signal, 1, env);
    expect(asked).toBe(3);
    expect(notified()).toEqual([
      '/run/systemd/notify STATUS=waiting for the runtime: connect ENOENT /run/containerd/containerd.sock',
      '/run/systemd/notify READY=1 STATUS=serving: runtime "containerd" answers',
    ]);
  });

  test('stopping ends the wait without READY=1', async () => {
    const stop = new AbortController();
    let asked = 0;
    const source = {
      readiness: () => {
        if (++asked === 2) stop.abort();
        return Promise.resolve({ ready: false, detail: 'down' });
      },
    };
    await notifyReadyOnceRuntimeAnswers(source, silentLogger, stop.signal, 1, env);
    expect(notified()).toEqual(['/run/systemd/notify STATUS=waiting for the runtime: down']);
  });

  test('without NOTIFY_SOCKET (not under systemd) nothing is asked or sent', async () => {
    let asked = 0;
    const source = { readiness: () => Promise.resolve({ ready: asked++ > 0, detail: '' }) };
    const outside = { ...env };
    delete outside['NOTIFY_SOCKET'];
    await notifyReadyOnceRuntimeAnswers(source, silentLogger, new AbortController().signal, 1, outside);
    expect(asked).toBe(0);
    expect(notified()).toEqual([]);
  });
});
