import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ExitCode, exitCodeMeaning } from '../../src/commands/exit-codes';
import { GrpcStatus, ProxyError, proxyErrorCodes } from '../../src/errors';

const ROOT = join(__dirname, '../..');
const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');

/** The rows of the markdown table that follows `heading`. */
function tableAfter(heading: string): string[][] {
  const start = readme.indexOf(heading);
  if (start === -1) throw new Error(`README has no "${heading}"`);
  const lines = readme.slice(start).split('\n').slice(1);
  const first = lines.findIndex((l) => l.startsWith('|'));
  const rows: string[][] = [];
  for (const line of lines.slice(first)) {
    if (!line.startsWith('|')) break;
    rows.push(
      line
        .split('|')
        .slice(1, -1)
        .map((cell) => cell.trim()),
    );
  }
  return rows.slice(2);
}

const statusName = (code: number): string | undefined => Object.entries(GrpcStatus).find(([, c]) => c === code)?.[0];

describe('the README documents', () => {
  test('every stable error code, each with its gRPC status', () => {
    const rows = tableAfter('### Error codes');
    const documented = new Map<string, string>();
    for (const [codes = '', status = ''] of rows) {
      for (const code of codes.match(/`[A-Z_]+`/g) ?? []) documented.set(code.slice(1, -1), status.replace(/`/g, ''));
    }
    for (const code of proxyErrorCodes) {
      expect([code, documented.get(code)]).toEqual([code, statusName(new ProxyError(code, '').grpcStatus)]);
    }
    expect([...documented.keys()].sort()).toEqual([...proxyErrorCodes].sort());
  });

  test('every exit code, in one table for all commands', () => {
    const rows = tableAfter('### Exit codes');
    const documented = rows.map(([code = '', name = '']) => [Number(code), name.replace(/`/g, '')]);
    expect(documented).toEqual(Object.entries(ExitCode).map(([name, code]) => [code, name]));
    for (const [name, meaning] of Object.entries(exitCodeMeaning)) expect(rows.find((r) => r[1] === `\`${name}\``)?.[2]).toBe(meaning);
  });

  test('every Debian package the test install script installs, here and in docs/real-containerd.md', () => {
    const script = readFileSync(join(ROOT, 'scripts/install-e2e-deps.sh'), 'utf8');
    const packages = /^packages=\(([^)]*)\)/m.exec(script)?.[1]?.trim().split(/\s+/) ?? [];
    expect(packages.length).toBeGreaterThan(5);
    const guide = readFileSync(join(ROOT, 'docs/real-containerd.md'), 'utf8');
    for (const pkg of packages) {
      expect([pkg, readme.includes(`\`${pkg}\``)]).toEqual([pkg, true]);
      expect([pkg, guide.includes(`\`${pkg}\``)]).toEqual([pkg, true]);
    }
  });
});
