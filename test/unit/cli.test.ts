import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli';
import { parseProxyFlags } from '../../src/commands/args';
import { commands } from '../../src/commands/commands';
import { ExitCode, type ExitCodeName, type ExitStatus } from '../../src/commands/exit-codes';

const dir = mkdtempSync(join(tmpdir(), 'cri-proxy-cli-'));
const config = join(dir, 'c.yaml');
writeFileSync(config, 'backends: [{ name: containerd, endpoint: /run/containerd/containerd.sock }]\n');

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

/** The codes an "Exit status:" section lists, by number. */
function listedCodes(help: string): number[] {
  const section = help.slice(help.indexOf('Exit status:'));
  return [...section.matchAll(/^ {2}(\d) /gm)].map((m) => Number(m[1]));
}

const numbers = (names: readonly ExitCodeName[]): number[] => names.map((n) => ExitCode[n]).sort();
const codesOf = (status: ExitStatus): number[] => numbers([...(Object.keys(status) as ExitCodeName[]), 'USAGE']);

describe('help', () => {
  test.each(commands.map((c) => [c.name, c] as const))(
    'cri-proxy %s --help: its usage, options and its own exit codes',
    async (name, command) => {
      const { code, out, err } = await run(...name.split(' '), '--help');
      expect({ code, err }).toEqual({ code: 0, err: '' });
      expect(out.split('\n')[0]).toBe(`Usage: cri-proxy ${command.help.usage}`);
      expect(out).toContain('-h, --help');
      expect(listedCodes(out)).toEqual(codesOf(command.help.exitStatus));
      const exitStatus = out.slice(out.indexOf('Exit status:'));
      for (const other of commands.filter((c) => c !== command)) expect(exitStatus).not.toContain(other.name);
    },
  );

  test('--help anywhere in a command line shows that command help', async () => {
    const { code, out } = await run('audit', 'verify', '--json', '-h', 'x.log');
    expect(code).toBe(0);
    expect(out.split('\n')[0]).toBe('Usage: cri-proxy audit verify [--json] [--key FILE]... [--head SEQ:HASH]... FILE...');
  });

  test.each(['config', 'policy', 'audit'])('cri-proxy %s --help lists that group commands', async (group) => {
    const { code, out } = await run(group, '--help');
    expect(code).toBe(0);
    const inGroup = commands.filter((c) => c.name.startsWith(`${group} `));
    expect(inGroup.length).toBeGreaterThan(0);
    for (const c of inGroup) expect(out).toContain(`cri-proxy ${c.help.usage}`);
  });

  test('the top-level help lists every command with its options, and the exit codes of running the proxy', async () => {
    const { code, out } = await run('--help');
    expect(code).toBe(0);
    for (const c of commands) expect(out).toContain(`cri-proxy ${c.help.usage}`);
    expect(out).toContain('audit verify [--json] [--key FILE]... [--head SEQ:HASH]... FILE...');
    expect(listedCodes(out)).toEqual(numbers(['OK', 'USAGE', 'INPUT_INVALID', 'START_FAILED', 'FAILED']));
    expect(listedCodes(out)).not.toContain(ExitCode.CHECK_FAILED);
  });
});

describe('usage errors', () => {
  test.each<[string[], string, string]>([
    [['--bogus'], 'cri-proxy', "Unknown option '--bogus'"],
    [['serve'], 'cri-proxy', 'unexpected argument "serve"'],
    [['--config'], 'cri-proxy', "Option '--config <value>' argument missing"],
    [['--log-level', 'debug', 'config', 'validate', 'x'], 'cri-proxy', 'unexpected argument "config" (commands go before options)'],
    [['config'], 'cri-proxy config', 'name a command: validate, print'],
    [['config', 'check', 'x'], 'cri-proxy config', 'unknown command "check" (config commands: validate, print)'],
    [['audit'], 'cri-proxy audit', 'name a command: verify'],
    [['audit', 'check'], 'cri-proxy audit', 'unknown command "check"'],
    [['policy'], 'cri-proxy policy', 'name a command: check'],
    [['config', 'validate'], 'cri-proxy config validate', 'name the FILE to check'],
    [['config', 'validate', 'a', 'b'], 'cri-proxy config validate', 'unexpected argument "b"'],
    [['config', 'validate', '--force', 'a'], 'cri-proxy config validate', "Unknown option '--force'"],
    [['config', 'print', 'c.yaml'], 'cri-proxy config print', 'unexpected argument "c.yaml" (name the file with --config)'],
    [['config', 'print', '--version'], 'cri-proxy config print', "Unknown option '--version'"],
    [['policy', 'check', 'nginx'], 'cri-proxy policy check', '--config FILE is required'],
    [['audit', 'verify', '--head', '12:abc', 'x.log'], 'cri-proxy audit verify', '--head 12:abc: expected SEQ:HASH'],
    [['audit', 'verify'], 'cri-proxy audit verify', 'name at least one FILE'],
  ])('%j: exit 2, the problem and where the help is, in two lines', async (argv, prog, problem) => {
    const { code, out, err } = await run(...argv);
    expect({ code, out }).toEqual({ code: ExitCode.USAGE, out: '' });
    const lines = err.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toContain(`${prog}: ${problem}`);
    expect(lines[1]).toBe(`Run "${prog} --help" for usage.`);
  });
});

describe('the proxy flags', () => {
  test.each<[string[], unknown]>([
    [[], { configFile: undefined, overrides: {}, version: false, positionals: [] }],
    [['--config', 'c.yaml'], { configFile: 'c.yaml', overrides: {}, version: false, positionals: [] }],
    [
      ['--config=c.yaml', '--listen', '/l.sock', '--upstream', '/u.sock', '--log-level', 'debug'],
      { configFile: 'c.yaml', overrides: { listen: '/l.sock', upstream: '/u.sock', logLevel: 'debug' }, version: false, positionals: [] },
    ],
    [['--http-listen', ''], { configFile: undefined, overrides: { httpListen: '' }, version: false, positionals: [] }],
  ])('%j', (argv, expected) => {
    expect(parseProxyFlags(argv)).toEqual(expected);
  });

  test('--version prints the version, and only at the top', async () => {
    const { code, out } = await run('--version');
    expect(code).toBe(0);
    expect(out).toMatch(/^cri-proxy \d+\.\d+\.\d+\S* \(commit \S+\)\n$/);
  });

  test('config print takes them too', async () => {
    const { code, out } = await run('config', 'print', '--config', config, '--log-level', 'warn');
    expect(code).toBe(0);
    expect(out).toContain('logLevel: warn');
  });
});
