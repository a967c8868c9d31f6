import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { E2eEnvironment } from './environment';
import type { ManagedProcess } from './processes';

/** The built command a user runs; the e2e suites always test that, not the sources. */
export const CRI_PROXY_CLI = join(projectRoot(__dirname), 'dist', 'src', 'cli.js');

/** The folder holding package.json, from the sources or from their compiled copy under dist/. */
function projectRoot(start: string): string {
  for (let dir = start; dirname(dir) !== dir; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
  }
  throw new Error(`no package.json above ${start}`);
}

export interface RunningProxy {
  readonly process: ManagedProcess;
  readonly socketPath: string;
  readonly configPath: string;
}

export interface ProxyBackend {
  readonly name: string;
  /** The runtime's socket path. */
  readonly socket: string;
}

/**
 * Starts cri-proxy in front of the environment's containerd (or of `backends`, the first the default) with
 * `extraYaml` appended to its config (interceptors, http listener). Stopped by env.stop() before containerd.
 */
export async function startProxy(
  env: E2eEnvironment,
  name = 'cri-proxy',
  extraYaml = 'http:\n  listen: ""\n',
  backends: readonly ProxyBackend[] = [{ name: 'containerd', socket: env.containerdSocket }],
): Promise<RunningProxy> {
  const socketPath = env.socketPath(name);
  const configPath = join(env.workDir, `${name}.yaml`);
  writeFileSync(
    configPath,
    [
      `listen: unix://${socketPath}`,
      'logLevel: info',
      'backends:',
      ...backends.flatMap((b, i) => [
        `  - name: ${b.name}`,
        `    endpoint: unix://${b.socket}`,
        ...(i === 0 && backends.length > 1 ? ['    default: true'] : []),
      ]),
      extraYaml,
    ].join('\n'),
  );
  return launchProxy(env, name, socketPath, configPath);
}

/** Stops the proxy (SIGTERM: calls in flight finish) and starts it again with the same config and socket. */
export async function restartProxy(env: E2eEnvironment, proxy: RunningProxy): Promise<RunningProxy> {
  const exit = await proxy.process.stop(30_000);
  if (exit.code !== 0) throw new Error(`cri-proxy exited with ${exit.code ?? exit.signal ?? '?'} on SIGTERM`);
  return launchProxy(env, proxy.process.name, proxy.socketPath, proxy.configPath);
}

async function launchProxy(env: E2eEnvironment, name: string, socketPath: string, configPath: string): Promise<RunningProxy> {
  const process = await env.startProcess(name, globalThis.process.execPath, [CRI_PROXY_CLI, '--config', configPath], {
    waitForSocket: socketPath,
  });
  return { process, socketPath, configPath };
}
