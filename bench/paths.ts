/** Where the bench finds the repository's files, whether it runs from bench/ or from its compiled copy. */
import { existsSync } from 'node:fs';
import * as path from 'node:path';

let root: string | undefined;

/** The folder holding package.json. */
export function repoRoot(): string {
  if (root === undefined) {
    let dir = __dirname;
    while (!existsSync(path.join(dir, 'package.json'))) {
      const parent = path.dirname(dir);
      if (parent === dir) throw new Error(`no package.json above ${__dirname}`);
      dir = parent;
    }
    root = dir;
  }
  return root;
}

/** The built CLI, started exactly as an operator would. */
export function cliPath(): string {
  return path.join(repoRoot(), 'dist', 'src', 'cli.js');
}

export function resultsDir(): string {
  return path.join(repoRoot(), 'bench', 'results');
}
