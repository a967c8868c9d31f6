/** A real registry (Debian's docker-registry) for one test file, in a temporary folder the file may use too. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRegistry, type Registry } from '../e2e/harness/registry';
import { OciRegistry } from './oci-registry';

export interface TestRegistry {
  /** The temporary folder: the registry's storage and log, and whatever else the test writes. */
  readonly dir: string;
  readonly server: Registry;
  /** A client that pushes images (and signatures) to it. */
  readonly registry: OciRegistry;
}

/** Starts a registry in a new temporary folder named after `prefix`. */
export async function startTestRegistry(prefix: string): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  try {
    const server = await startRegistry(dir, dir);
    return { dir, server, registry: new OciRegistry(server.host) };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Stops what startTestRegistry started and removes its folder; either may be missing when the start failed. */
export async function stopTestRegistry(server: Registry | undefined, dir: string | undefined): Promise<void> {
  await server?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
}
