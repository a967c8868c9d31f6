/**
 * Jest global setup of the projects whose tests run the built command (dist/): `npm run build` when a file the
 * build reads is newer than the last build, so that the tests work on a fresh clone and cost a walk over the
 * sources when the build is current. The last build is the time of dist/build-info.json, which `npm run build`
 * writes last.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..');
const BUILT = join(ROOT, 'dist', 'build-info.json');

function mtimeOrZero(file: string): number {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

/** The newest modification time under `path` (a file or a folder). */
function newest(path: string): number {
  const stats = statSync(path, { throwIfNoEntry: false });
  if (stats === undefined) return 0;
  if (!stats.isDirectory()) return stats.mtimeMs;
  return readdirSync(path).reduce((latest, name) => Math.max(latest, newest(join(path, name))), stats.mtimeMs);
}

/** What the build reads: the folders tsconfig.build.json includes, the compiler settings and the packages. */
function buildInputs(): string[] {
  const config = JSON.parse(readFileSync(join(ROOT, 'tsconfig.build.json'), 'utf8')) as { include?: string[] };
  const files = ['tsconfig.json', 'tsconfig.build.json', 'package.json', 'package-lock.json', 'scripts/build-info.sh'];
  return [...(config.include ?? []), ...files].map((p) => join(ROOT, p));
}

export default function buildIfStale(): void {
  const built = mtimeOrZero(BUILT);
  if (buildInputs().every((input) => newest(input) < built)) return;
  process.stderr.write('\nbuilding dist/ for the tests that run the built command (npm run build)\n');
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'inherit' });
}
