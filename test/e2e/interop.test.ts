/**
 * A real gRPC-Go client through the proxy: containerd's own `ctr` (from Debian's containerd package) speaks the
 * containerd API, which the proxy does not know, so every call is relayed without being understood.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startEnvironment, type E2eEnvironment } from './harness/environment';
import { startProxy } from './harness/proxy';

jest.setTimeout(120_000);
const run = promisify(execFile);

async function ctr(address: string, ...args: string[]): Promise<string> {
  const { stdout } = await run('ctr', ['--address', address, '--timeout', '20s', ...args]);
  return stdout;
}

describe('gRPC-Go through the proxy (real containerd)', () => {
  let env: E2eEnvironment | undefined;

  afterEach(async () => {
    await env?.stop();
    env = undefined;
  });

  it('ctr gets the same answers through the proxy as from containerd directly', async () => {
    env = await startEnvironment();
    const proxy = await startProxy(env);
    const direct = await ctr(env.containerdSocket, 'version');
    expect(direct).toMatch(/Server:\s+Version:/);
    expect(await ctr(proxy.socketPath, 'version')).toBe(direct);
    expect(await ctr(proxy.socketPath, 'namespaces', 'ls')).toBe(await ctr(env.containerdSocket, 'namespaces', 'ls'));
    const images = await ctr(env.containerdSocket, '-n', 'k8s.io', 'images', 'ls', '-q');
    expect(await ctr(proxy.socketPath, '-n', 'k8s.io', 'images', 'ls', '-q')).toBe(images);
    // An error from the runtime comes back as it is.
    await expect(ctr(proxy.socketPath, '-n', 'k8s.io', 'containers', 'info', 'no-such-container')).rejects.toThrow(/not found/);
  });
});
