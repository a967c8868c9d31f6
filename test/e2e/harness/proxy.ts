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

/**
 * Starts cri-proxy in front of the environment's containerd with `extraYaml` appended to its config
 * (interceptors, http listener). Stopped by env.stop() before containerd.
 */
export async function startProxy(env: E2eEnvironment, name = 'cri-proxy', extraYaml = 'http:\n  listen: ""\n'): Promise<RunningProxy> {
  const socketPath = env.socketPath(name);
  const configPath = join(env.workDir, `${name}.yaml`);
  writeFileSync(
    configPath,
    [
      `listen: unix://${socketPath}`,
      'logLevel: info',
      'backends:',
      '  - name: containerd',
      `    endpoint: unix://${env.containerdSocket}`,
      extraYaml,
    ].join('\n'),
  );
  const process = await env.startProcess(name, globalThis.process.execPath, [CRI_PROXY_CLI, '--config', configPath], {
    waitForSocket: socketPath,
  });
  return { process, socketPath, configPath };
}
