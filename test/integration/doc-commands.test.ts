/**
 * Every `cri-proxy` command line README.md and docs/*.md show is run against the built command, as a shell runs
 * it, on files this test provides in place of the node's: it must end as documented (exit 0 for an example, no
 * crash). A synopsis (`audit verify [--json] [--key FILE]... FILE...`) is run in its shortest form. Each
 * documented command's `--help` is run too. What cannot run here is listed below with its reason.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { AuditWriter } from '../../src/audit/writer';
import { verifyAuditFiles } from '../../src/audit/verify';
import { commands } from '../../src/commands/commands';
import { ExitCode } from '../../src/commands/exit-codes';
import { commandOf, exitCodesOf } from '../support/doc-commands';
import { commandLines, readDocs, ROOT, type DocCommand } from '../support/docs';
import { makeTempDir } from '../support/proxy-harness';

jest.setTimeout(120_000);

const CLI = resolve(ROOT, 'dist/src/cli.js');

/** Commands whose lines cannot run here, and why; the proxy itself is `''`. Their options are still checked. */
const NOT_OFFLINE: Readonly<Record<string, string>> = {
  '': 'runs the proxy, which serves until stopped (the integration and e2e suites run it)',
  pods: "asks a running proxy's admin listener (pods-command.test.ts and the e2e suite run it against one)",
};

let dir: string;
/** The node's paths the docs use → the files standing in for them here. */
let nodePaths: [string, string][];
/** Per command, the value of each placeholder of its synopsis (FILE, IMAGE …). */
let placeholders: Readonly<Record<string, Readonly<Record<string, string>>>>;

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first`);
  dir = makeTempDir('cri-proxy-doc-commands-');
  mkdirSync(join(dir, 'bin'));
  writeFileSync(join(dir, 'bin/cri-proxy'), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`);
  chmodSync(join(dir, 'bin/cri-proxy'), 0o755);
  // /etc/cri-proxy: the example node chain (every interceptor, the image policy included) with its rules file.
  cpSync(join(ROOT, 'config/node.yaml'), join(dir, 'etc/cri-proxy.yaml'));
  cpSync(join(ROOT, 'config/policies'), join(dir, 'etc/policies'), { recursive: true });
  // /var/log/cri-proxy: an intact audit log, rotated once.
  const log = join(dir, 'log/audit.log');
  const writer = new AuditWriter(log, {
    fsync: 'record',
    fsyncIntervalMs: 1000,
    queueSize: 100,
    whenFull: 'block',
    maxBytes: 1024,
    keep: 3,
  });
  for (let i = 1; i <= 20; i++) await writer.append({ method: 'StartContainer', container: { id: `c${i}` } });
  await writer.close();
  expect(existsSync(`${log}.1`)).toBe(true);
  const verified = await verifyAuditFiles([`${log}.1`, log]);
  nodePaths = [
    ['/etc/cri-proxy/', `${dir}/etc/`],
    ['/var/log/cri-proxy/', `${dir}/log/`],
  ];
  const config = join(dir, 'etc/cri-proxy.yaml');
  placeholders = {
    'config validate': { FILE: config },
    'config print': { FILE: config },
    'policy check': { FILE: config, NS: 'kube-system', IMAGE: 'registry.k8s.io/pause:3.10' },
    'audit verify': { FILE: log, 'SEQ:HASH': `${verified.lastSeq ?? 0}:${verified.lastHash ?? ''}` },
  };
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A synopsis in its shortest form, one per alternative: optional parts dropped, `FILE...` once. */
function instances(text: string): string[] {
  const short = text
    .replace(/\s*\[[^\]]*\](\.\.\.)?/g, '')
    .replace(/(\S)(\.\.\.|…)/g, '$1')
    .replace(/\s+(\.\.\.|…)(?=\s|$)/g, '');
  const alternatives = /^(.*?)(\S+(?: \| \S+)+)$/.exec(short);
  if (alternatives === null) return [short];
  return (alternatives[2] ?? '').split(' | ').map((alt) => `${alternatives[1] ?? ''}${alt}`);
}

const PLACEHOLDER = /^[A-Z][A-Z0-9_]*(:[A-Z]+)?$/;

/** The line with the node's paths and the placeholders replaced; undefined when a placeholder has no value here. */
function runnable(text: string, command: string): string | undefined {
  let out = text;
  for (const [nodePath, here] of nodePaths) out = out.split(nodePath).join(here);
  const values = placeholders[command] ?? {};
  // Split on blanks only: quotes and globs (`audit.log*`) are left for the shell.
  const words = out.split(/\s+/);
  if (words.some((word) => PLACEHOLDER.test(word) && values[word] === undefined)) return undefined;
  return words.map((word) => (PLACEHOLDER.test(word) ? (values[word] ?? word) : word)).join(' ');
}

function run(line: string): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync('sh', ['-c', line], {
    cwd: dir,
    encoding: 'utf8',
    env: { ...process.env, PATH: `${join(dir, 'bin')}:${process.env.PATH ?? ''}` },
    timeout: 60_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

const shown: DocCommand[] = readDocs().flatMap(commandLines);

test('the docs show cri-proxy command lines', () => {
  expect(shown.length).toBeGreaterThan(5);
});

test('every command line the docs show that can run here ends as documented, without a crash', () => {
  const problems: string[] = [];
  let ran = 0;
  for (const line of shown) {
    const found = commandOf(line.text, commands);
    if (found.problem !== undefined) continue; // test/unit/docs.test.ts reports it
    const name = found.command?.name ?? '';
    const onlyInfo = found.command === undefined && found.options.some((o) => ['--help', '-h', '--version'].includes(o));
    if (NOT_OFFLINE[name] !== undefined && !onlyInfo) continue;
    // A command named in the text (`cri-proxy audit verify`) is a reference, not a command line.
    if (found.command !== undefined && found.args.length === 0) continue;
    for (const instance of instances(line.text)) {
      const text = runnable(instance, name);
      if (text === undefined) continue;
      const result = run(text);
      ran += 1;
      const allowed = exitCodesOf(found.command);
      const crashed = result.stderr.includes('\n    at ') || result.code === null || !allowed.includes(result.code);
      if (crashed || result.code !== ExitCode.OK) {
        const said = (result.stderr.trim() || result.stdout.trim()).split('\n')[0] ?? '';
        problems.push(`${line.where}: ${line.text}: "${text}" exited ${String(result.code)}, not 0: ${said}`);
      }
    }
  }
  expect(problems).toEqual([]);
  expect(ran).toBeGreaterThan(5);
});

test("every command the docs show has a --help that starts with that command's usage", () => {
  const names = new Set(shown.flatMap((line) => commandOf(line.text, commands).command?.name ?? []));
  const problems = [...names].flatMap((name) => {
    const result = run(`cri-proxy ${name} --help`);
    const usage = commands.find((c) => c.name === name)?.help.usage ?? '';
    return result.code === 0 && result.stdout.startsWith(`Usage: cri-proxy ${usage}\n`)
      ? []
      : [`cri-proxy ${name} --help exited ${String(result.code)}`];
  });
  expect(problems).toEqual([]);
  expect(names.size).toBeGreaterThan(2);
});
