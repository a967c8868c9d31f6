/**
 * Runs whose test process died without stop() (killed jest, CI timeout) leave a containerd, shims, mounts and a
 * bridge behind. Each run records its owner pid; a later run tears down every run whose owner is gone.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { existingLayouts } from './containerd';
import { isAlive, killSync, listProcesses, waitForExit, withDescendants } from './processes';
import { mountsUnder, teardownContainerd } from './teardown';

export const WORK_DIR_PREFIX = 'cri-e2e-';
const OWNER_FILE = 'owner.pid';
/** Written once a run was torn down, so kept work dirs are not examined again. */
const STOPPED_FILE = 'stopped';

export function markOwner(workDir: string): void {
  writeFileSync(join(workDir, OWNER_FILE), `${process.pid}\n`);
}

export function markStopped(workDir: string): void {
  writeFileSync(join(workDir, STOPPED_FILE), '');
}

function ownerAlive(workDir: string): boolean {
  try {
    const pid = Number(readFileSync(join(workDir, OWNER_FILE), 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 && isAlive(pid);
  } catch {
    // No owner file: a run still starting up (or not ours): leave it alone.
    return true;
  }
}

/** Processes naming `workDir` (containerd, registry, proxy) and everything under them. */
export function processesOf(workDir: string): number[] {
  const processes = listProcesses();
  const roots = processes.filter((p) => p.pid !== process.pid && p.args.some((a) => a.includes(`${workDir}/`))).map((p) => p.pid);
  return withDescendants(roots, processes);
}

/** Tears down one abandoned run: kills its daemons, then the usual containerd teardown finds the rest. */
export async function reclaimRun(workDir: string, removeDir: boolean): Promise<void> {
  const pids = processesOf(workDir);
  killSync(pids);
  await waitForExit(pids, 10_000);
  for (const layout of existingLayouts(workDir)) await teardownContainerd(layout, undefined);
  if (removeDir && mountsUnder(workDir).length === 0) await rm(workDir, { recursive: true, force: true });
  else markStopped(workDir);
}

/** Reclaims every abandoned run under `tmpRoot`; returns the work dirs it reclaimed. */
export async function reclaimAbandonedRuns(tmpRoot: string, removeDirs: boolean): Promise<string[]> {
  let entries: string[];
  try {
    entries = readdirSync(tmpRoot);
  } catch {
    return [];
  }
  const reclaimed: string[] = [];
  for (const entry of entries) {
    if (!entry.startsWith(WORK_DIR_PREFIX)) continue;
    const workDir = join(tmpRoot, entry);
    if (existsSync(join(workDir, STOPPED_FILE)) || ownerAlive(workDir)) continue;
    await reclaimRun(workDir, removeDirs);
    reclaimed.push(workDir);
  }
  return reclaimed;
}
