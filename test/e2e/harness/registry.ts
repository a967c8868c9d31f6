/** A private docker-registry on loopback, and pushing the harness's OCI images into it with skopeo. */
import { request } from 'node:http';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, run, spawnLogged, tailFile, waitUntil, type ManagedProcess } from './processes';

export interface Registry {
  /** `127.0.0.1:PORT`, the registry part of image references. */
  readonly host: string;
  readonly process: ManagedProcess;
  stop(): Promise<void>;
}

/** Starts the registry on a free loopback port; storage and config live under `<workDir>/registry`. */
export async function startRegistry(workDir: string, logDir: string): Promise<Registry> {
  const dir = join(workDir, 'registry');
  await mkdir(join(dir, 'storage'), { recursive: true });
  // The free port may be taken between probing and binding; a second port is cheaper than diagnosing that.
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const host = `127.0.0.1:${port}`;
    const configFile = join(dir, 'config.yml');
    await writeFile(configFile, registryConfig(join(dir, 'storage'), host));
    const proc = await spawnLogged('registry', 'docker-registry', ['serve', configFile], { logDir });
    try {
      await waitUntil(`registry on ${host}`, () => registryAnswers(host), { timeoutMs: 15_000, process: proc });
      return {
        host,
        process: proc,
        stop: async () => {
          await proc.stop();
        },
      };
    } catch (err) {
      lastError = err;
      await proc.stop();
      const log = await tailFile(proc.logFile, 5);
      if (!log.includes('address already in use')) break;
    }
  }
  throw lastError instanceof Error ? lastError : new Error(String(lastError));
}

function registryConfig(storageDir: string, host: string): string {
  return [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${storageDir}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: ${host}`,
    '',
  ].join('\n');
}

/** True once `GET /v2/` answers 200 (the registry API is up). */
function registryAnswers(host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(`http://${host}/v2/`, { method: 'GET', timeout: 1000, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.once('error', () => {
      resolve(false);
    });
    req.once('timeout', () => {
      req.destroy();
    });
    req.end();
  });
}

/** Copies `oci:<layoutDir>:<tag>` to `docker://<reference>` over plain http. */
export async function pushImage(layoutDir: string, tag: string, reference: string): Promise<void> {
  // --insecure-policy: no signature policy file is needed for images we built ourselves.
  await run('skopeo', ['--insecure-policy', 'copy', '--dest-tls-verify=false', `oci:${layoutDir}:${tag}`, `docker://${reference}`]);
}
