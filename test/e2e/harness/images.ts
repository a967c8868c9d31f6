/** Builds the e2e OCI images (busybox and pause) without Docker: plain directory trees packed with umoci. */
import { chmod, copyFile, mkdir, open, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { run } from './processes';

const PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * The sandbox's PID 1. `sleep` would not do: as PID 1 it has no default signal actions, so StopPodSandbox's
 * SIGTERM would be ignored; it must also reap the orphans a pod's shared PID namespace hands it.
 */
const PAUSE_SOURCE = `#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_term(int sig) { (void)sig; _exit(0); }
static void on_chld(int sig) {
  (void)sig;
  while (waitpid(-1, 0, WNOHANG) > 0) {}
}

int main(void) {
  struct sigaction sa = {0};
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, 0);
  sigaction(SIGINT, &sa, 0);
  sa.sa_handler = on_chld;
  sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
  sigaction(SIGCHLD, &sa, 0);
  for (;;) pause();
}
`;

export interface BuiltImages {
  /** OCI image layout directory holding both images. */
  readonly layoutDir: string;
  /** Tags inside the layout (`oci:<layoutDir>:<tag>`). */
  readonly busyboxTag: 'busybox';
  readonly pauseTag: 'pause';
}

const BUSYBOX_CANDIDATES = ['/bin/busybox', '/usr/bin/busybox'];

/** Builds both images under `<workDir>/images`. */
export async function buildImages(workDir: string): Promise<BuiltImages> {
  const dir = join(workDir, 'images');
  const layoutDir = join(dir, 'oci');
  await mkdir(dir, { recursive: true });
  await run('umoci', ['init', '--layout', layoutDir]);
  const [busyboxRoot, pauseRoot] = await Promise.all([busyboxTree(dir), pauseTree(dir)]);
  // Sequential: umoci rewrites the layout's index.json on each step.
  await packImage(layoutDir, 'busybox', busyboxRoot, ['--config.cmd', 'sh']);
  await packImage(layoutDir, 'pause', pauseRoot, ['--config.entrypoint', '/pause']);
  return { layoutDir, busyboxTag: 'busybox', pauseTag: 'pause' };
}

async function busyboxTree(dir: string): Promise<string> {
  const busybox = BUSYBOX_CANDIDATES.find((p) => existsSync(p));
  if (busybox === undefined) throw new Error('busybox not found: run scripts/install-e2e-deps.sh');
  if (await isDynamicElf(busybox)) {
    throw new Error(`${busybox} is dynamically linked: the e2e image needs busybox-static`);
  }
  const root = join(dir, 'busybox-root');
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'root', 'tmp', 'var']) {
    await mkdir(join(root, d), { recursive: true });
  }
  await chmod(join(root, 'tmp'), 0o1777);
  await copyFile(busybox, join(root, 'bin', 'busybox'));
  await chmod(join(root, 'bin', 'busybox'), 0o755);
  const { stdout } = await run(busybox, ['--list']);
  for (const applet of stdout.split('\n')) {
    const name = applet.trim();
    if (name === '' || name === 'busybox' || name.includes('/')) continue;
    await symlink('busybox', join(root, 'bin', name));
  }
  // Lets tests use run_as_username and tools that look users up.
  await writeFile(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
  await writeFile(join(root, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
  return root;
}

async function pauseTree(dir: string): Promise<string> {
  const root = join(dir, 'pause-root');
  await mkdir(root, { recursive: true });
  const source = join(dir, 'pause.c');
  await writeFile(source, PAUSE_SOURCE);
  await run('gcc', ['-static', '-Os', '-s', '-o', join(root, 'pause'), source]);
  return root;
}

async function packImage(layoutDir: string, tag: string, root: string, config: readonly string[]): Promise<void> {
  const image = `${layoutDir}:${tag}`;
  await run('umoci', ['new', '--image', image]);
  await run('umoci', ['insert', '--image', image, root, '/']);
  await run('umoci', ['config', '--image', image, '--config.env', PATH_ENV, '--config.workingdir', '/', ...config]);
}

/** True when the ELF file has a PT_INTERP program header (needs a dynamic loader). */
async function isDynamicElf(path: string): Promise<boolean> {
  const file = await open(path, 'r');
  try {
    const header = Buffer.alloc(64);
    await file.read(header, 0, 64, 0);
    if (header.readUInt32BE(0) !== 0x7f454c46 || header[4] !== 2) return false; // only 64-bit ELF is checked
    const phoff = Number(header.readBigUInt64LE(32));
    const phentsize = header.readUInt16LE(54);
    const phnum = header.readUInt16LE(56);
    const table = Buffer.alloc(phentsize * phnum);
    await file.read(table, 0, table.length, phoff);
    for (let i = 0; i < phnum; i++) {
      if (table.readUInt32LE(i * phentsize) === 3) return true;
    }
    return false;
  } finally {
    await file.close();
  }
}
