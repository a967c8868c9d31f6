/** The release tarball as an operator gets it: built by scripts/release.sh, unpacked into an empty folder. */
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { run } from './processes';

const ROOT = resolve(__dirname, '../../..');

export interface UnpackedRelease {
  readonly tarball: string;
  /** The folder the tarball unpacked into (`cri-proxy-VERSION-linux-x64`). */
  readonly dir: string;
  readonly executable: string;
  /** A PATH with no `node` on it: an empty folder. */
  readonly pathWithoutNode: string;
}

export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}

/**
 * The release tarball: the one CRI_PROXY_RELEASE_TARBALL names (the test command builds it first), else
 * built now with scripts/release.sh.
 */
export async function releaseTarball(): Promise<string> {
  const given = process.env['CRI_PROXY_RELEASE_TARBALL'];
  if (given !== undefined && given !== '') return resolve(given);
  await run(join(ROOT, 'scripts', 'release.sh'), [], { cwd: ROOT, timeoutMs: 600_000 });
  return join(ROOT, 'release', `cri-proxy-${packageVersion()}-linux-x64.tar.gz`);
}

/** The npm package release.sh packs beside the tarball. */
export function npmPackage(tarball: string): string {
  return join(tarball, '..', `cri-proxy-${packageVersion()}.tgz`);
}

export async function unpackRelease(tarball: string): Promise<UnpackedRelease> {
  const into = await mkdtemp(join(tmpdir(), 'cri-proxy-release-'));
  await run('tar', ['-xzf', tarball, '-C', into]);
  const [top, ...others] = readdirSync(into);
  if (top === undefined || others.length > 0) throw new Error(`${tarball} must hold exactly one folder`);
  const pathWithoutNode = join(into, 'empty-path');
  mkdirSync(pathWithoutNode);
  return { tarball, dir: join(into, top), executable: join(into, top, 'cri-proxy'), pathWithoutNode };
}

/** True when `node` can be found on `path`. */
export function nodeOnPath(path: string): boolean {
  return path.split(delimiter).some((dir) => dir !== '' && existsSync(join(dir, 'node')));
}
