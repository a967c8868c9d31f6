import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as sea from 'node:sea';

/** Where `npm run build` and the release write the version and commit the program was built from. */
export const BUILD_INFO_FILE = 'dist/build-info.json';

/**
 * The folder holding package.json: walking up finds it whether this file runs from `src/` (ts-jest) or from the
 * compiled `dist/src/`, in a checkout or in an installed npm package.
 */
export function packageRoot(): string {
  for (let dir = __dirname; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${__dirname}`);
  }
}

/**
 * A text file shipped with the program, by its path in the package (`proto/runtime/v1/cri.proto`). The
 * single executable of the release carries these files as embedded assets under the same names, and has no
 * package folder to read them from.
 */
export function packageFile(relativePath: string): string {
  if (sea.isSea()) return sea.getAsset(relativePath, 'utf8');
  return readFileSync(join(packageRoot(), relativePath), 'utf8');
}

export interface BuildInfo {
  readonly version: string;
  /** The git commit built, `+dirty` appended when the tree had changes; `unknown` outside a build. */
  readonly commit: string;
}

/** Version and commit of this build; from package.json (commit unknown) when nothing recorded them. */
export function buildInfo(): BuildInfo {
  try {
    const info = JSON.parse(packageFile(BUILD_INFO_FILE)) as Partial<BuildInfo>;
    if (typeof info.version === 'string' && typeof info.commit === 'string') return { version: info.version, commit: info.commit };
  } catch {
    // Not built (tests run from the sources): fall back to package.json.
  }
  const pkg = JSON.parse(packageFile('package.json')) as { version?: unknown };
  return { version: typeof pkg.version === 'string' ? pkg.version : 'unknown', commit: 'unknown' };
}
