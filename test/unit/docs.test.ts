/**
 * The docs (README.md, docs/*.md) against the code: every metric name, config key and default, exit code,
 * error code, file path, link and command line they show. Each failure names the doc line that is false. What
 * the docs mention is extracted from them, not listed here, so new docs are checked as they come; the few
 * things that cannot be checked are listed, each with its reason. `test/integration/doc-commands.test.ts` runs
 * the command lines.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { z } from 'zod';
import { builtinTypes } from '../../src/commands/builtin-types';
import { commands } from '../../src/commands/commands';
import { ExitCode, exitCodeMeaning, type ExitCodeName } from '../../src/commands/exit-codes';
import { errorMap, formatPath, zodIssues } from '../../src/config/issues';
import { parseConfig } from '../../src/config/load';
import { printableConfig } from '../../src/config/print';
import { proxyConfigSchema, validateProxyConfig } from '../../src/config/schema';
import { GrpcStatus, ProxyError, proxyErrorCodes, type ProxyErrorCode } from '../../src/errors';
import { builtinInterceptorTypes } from '../../src/interceptors';
import { METRIC } from '../../src/metrics/names';
import { policyFileSchema } from '../../src/policies/policy-schema';
import { commandLines, leadingCode, readDocs, ROOT, type Doc, type Table } from '../support/docs';
import { commandOf, exitCodesOf, optionsOf } from '../support/doc-commands';
import { MINIMAL_CONFIGS, schemaKeys, valueAt, type SchemaKey } from '../support/schema-keys';

const docs = readDocs();
const readme = docs.find((d) => d.file === 'README.md') as Doc;

/** The table under `heading` in the README. */
function readmeTableAt(heading: string): Table {
  const line = readme.prose.indexOf(heading) + 1;
  const table = readme.tables.find((t) => t.line > line);
  if (line === 0 || table === undefined) throw new Error(`README has no table under "${heading}"`);
  return table;
}

const readmeTable = (heading: string): readonly (readonly string[])[] => readmeTableAt(heading).rows.map((r) => r.value);

describe('the README documents', () => {
  const statusName = (code: number): string | undefined => Object.entries(GrpcStatus).find(([, c]) => c === code)?.[0];

  test('every stable error code once, with its gRPC status', () => {
    const table = readmeTableAt('### Error codes');
    const problems: string[] = [];
    const seen = new Map<string, string>();
    for (const row of table.rows) {
      const [codes = '', status = ''] = row.value;
      for (const code of (codes.match(/`[A-Z_]+`/g) ?? []).map((c) => c.slice(1, -1))) {
        const expected = proxyErrorCodes.includes(code as ProxyErrorCode)
          ? statusName(new ProxyError(code as ProxyErrorCode, '').grpcStatus)
          : undefined;
        if (expected === undefined) problems.push(`${row.where}: ${code} is not an error code (src/errors.ts)`);
        else if (status.replace(/`/g, '') !== expected) problems.push(`${row.where}: ${code} answers ${expected}, not ${status}`);
        if (seen.has(code)) problems.push(`${row.where}: ${code} is documented twice (also ${seen.get(code) ?? ''})`);
        seen.set(code, row.where);
      }
    }
    for (const code of proxyErrorCodes.filter((c) => !seen.has(c))) problems.push(`README.md:${table.line}: ${code} is missing`);
    expect(problems).toEqual([]);
  });

  test('every exit code, in one table for all commands', () => {
    const rows = readmeTable('### Exit codes');
    const documented = rows.map(([code = '', name = '']) => [Number(code), name.replace(/`/g, '')]);
    expect(documented).toEqual(Object.entries(ExitCode).map(([name, code]) => [code, name]));
    for (const [name, meaning] of Object.entries(exitCodeMeaning)) expect(rows.find((r) => r[1] === `\`${name}\``)?.[2]).toBe(meaning);
  });

  test('every Debian package the test install script installs, here and in docs/real-containerd.md', () => {
    const script = readFileSync(join(ROOT, 'scripts/install-e2e-deps.sh'), 'utf8');
    const packages = /^packages=\(([^)]*)\)/m.exec(script)?.[1]?.trim().split(/\s+/) ?? [];
    expect(packages.length).toBeGreaterThan(5);
    const guide = docs.find((d) => d.file === 'docs/real-containerd.md')?.text ?? '';
    const missing = packages.flatMap((pkg) => [
      ...(readme.text.includes(`\`${pkg}\``) ? [] : [`README.md: ${pkg}`]),
      ...(guide.includes(`\`${pkg}\``) ? [] : [`docs/real-containerd.md: ${pkg}`]),
    ]);
    expect(missing).toEqual([]);
  });
});

describe('metric names', () => {
  const names = new Set<string>(Object.values(METRIC));
  const mentions = docs.flatMap((doc) =>
    doc.text
      .split('\n')
      .flatMap((text, i) => [...text.matchAll(/\bcri_proxy_[a-z0-9_]+/g)].map((m) => ({ name: m[0], where: `${doc.file}:${i + 1}` }))),
  );
  /** A histogram's series carry suffixes of its name. */
  const base = (name: string): string => (names.has(name) ? name : name.replace(/_(bucket|sum|count)$/, ''));

  test('every metric a doc names is one the proxy exports (src/metrics/names.ts)', () => {
    const unknown = mentions.filter((m) => !names.has(base(m.name))).map((m) => `${m.where}: ${m.name} is not in METRIC`);
    expect(unknown).toEqual([]);
  });

  test('every metric the proxy exports is documented', () => {
    const documented = new Set(mentions.map((m) => base(m.name)));
    expect([...names].filter((name) => !documented.has(name))).toEqual([]);
  });
});

/** A schema's keys by path, and the value each takes when left out, as `config print` shows it. */
interface KnownKeys {
  readonly name: string;
  readonly keys: ReadonlyMap<string, SchemaKey>;
  readonly defaults: unknown;
}

/** What `config print` prints for a config with one backend and, if given, one interceptor entry. */
function printed(entry?: { type: string; config: unknown }): Record<string, unknown> {
  const input = { backends: [{ name: 'b', endpoint: '/run/b.sock' }], interceptors: entry === undefined ? [] : [{ name: 'x', ...entry }] };
  return parse(printableConfig(parseConfig(JSON.stringify(input), 'defaults.yaml', builtinTypes()), builtinTypes())) as Record<
    string,
    unknown
  >;
}

const keysOf = (schema: z.ZodType): ReadonlyMap<string, SchemaKey> => new Map(schemaKeys(schema).map((k) => [k.path, k]));
const proxyKeys: KnownKeys = { name: 'the proxy', keys: keysOf(proxyConfigSchema), defaults: printed() };
const typeKeys = new Map(
  builtinInterceptorTypes.map((t) => {
    const [entry] = printed({ type: t.name, config: MINIMAL_CONFIGS[t.name] ?? {} }).interceptors as { config: unknown }[];
    return [t.name, { name: `type ${t.name}`, keys: keysOf(t.schema), defaults: entry?.config }];
  }),
);

/** The schema a doc's key tables describe: an interceptor type's (`# Audit log (\`type: audit\`)`), else the proxy's. */
function schemaOfDoc(doc: Doc): KnownKeys | undefined {
  const type = /^# .*\(`type: ([a-z-]+)`\)/m.exec(doc.text)?.[1];
  return type === undefined ? proxyKeys : typeKeys.get(type);
}

/** Why a key `path` (as docs write it: `limits.*`, `backends[]`, `rules[].match.labels`) is not one of `known`'s. */
function keyProblem(known: KnownKeys, path: string): string | undefined {
  const bare = path.replace(/\.\*$/, '').replace(/\[\]$/, '');
  const key = known.keys.get(bare);
  if (key === undefined) return `${path} is not a key of ${known.name}`;
  if (path.endsWith('.*') && key.kind !== 'object' && key.kind !== 'map') return `${bare} has no keys of its own (${key.kind})`;
  if (path.endsWith('[]') && key.kind !== 'list') return `${bare} is not a list`;
  return undefined;
}

/** The documented default (the cell's leading code, read as YAML) against the value the key takes when left out. */
function defaultProblem(known: KnownKeys, path: string, cell: string): string | undefined {
  const literal = leadingCode(cell);
  if (literal === undefined) return undefined;
  const bare = path.replace(/\[\]$/, '');
  const key = known.keys.get(bare);
  // Parsing a minimal config fills in what the schema's defaults (and transforms) give; keys under lists have their own.
  const actual = key?.alwaysPresent === true ? valueAt(known.defaults, bare) : (key?.default?.value ?? valueAt(known.defaults, bare));
  const documented: unknown = parse(literal);
  return JSON.stringify(documented) === JSON.stringify(actual)
    ? undefined
    : `${path}: the default is ${JSON.stringify(actual)}, not ${literal}`;
}

/** A table of settings: its first column is headed "key", with the keys' prefix if any (`key (\`limits.\`)`). */
function keyTable(table: Table): { prefix: string; defaultColumn: number } | undefined {
  const [first = ''] = table.header;
  if (!/^key\b/i.test(first)) return undefined;
  return { prefix: leadingCode(first.replace(/^key\s*\(/i, '')) ?? '', defaultColumn: table.header.findIndex((h) => /^default$/i.test(h)) };
}

describe('config keys', () => {
  test('every key in a table of settings is a key of the schema the doc describes, with the default it has', () => {
    const problems: string[] = [];
    for (const doc of docs) {
      const known = schemaOfDoc(doc);
      for (const table of doc.tables) {
        const shape = keyTable(table);
        if (shape === undefined) continue;
        if (known === undefined) {
          problems.push(`${doc.file}:${table.line}: names an interceptor type that does not exist`);
          continue;
        }
        for (const row of table.rows) {
          const path = `${shape.prefix}${leadingCode(row.value[0] ?? '') ?? ''}`;
          const problem = keyProblem(known, path) ?? defaultProblem(known, path, row.value[shape.defaultColumn] ?? '');
          if (problem !== undefined) problems.push(`${row.where}: ${problem}`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  test('every key of a config example (a YAML block with backends or interceptors, or a rules file) is known', () => {
    const problems: string[] = [];
    for (const doc of docs) {
      for (const block of doc.blocks.filter((b) => b.lang === 'yaml')) {
        const value: unknown = parse(block.lines.join('\n'));
        if (typeof value !== 'object' || value === null) continue;
        const keys = Object.keys(value);
        const isConfig = keys.some((k) => ['backends', 'interceptors', 'listen'].includes(k));
        const isRulesFile = !isConfig && keys.includes('rules') && keys.some((k) => ['mode', 'defaultAction'].includes(k));
        const checked = isConfig ? validateProxyConfig(value, builtinTypes()) : undefined;
        const issues =
          checked?.ok === false
            ? checked.issues
            : isRulesFile
              ? zodIssues(policyFileSchema.safeParse(value, { error: errorMap }).error?.issues ?? [])
              : [];
        for (const issue of issues) {
          // Examples elide what does not matter with `…`; only keys and types that do not exist are wrong.
          if (!/^unknown (key|interceptor type)/.test(issue.message) || issue.path.some((p) => /…|\.\.\./.test(String(p)))) continue;
          problems.push(`${doc.file}:${block.line}: ${formatPath(issue.path)}: ${issue.message.split(';')[0] ?? ''}`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  test('every dotted key in the text (`limits.maxHeldRequestBytes`, `podStart.settleMs`) is a key of some schema', () => {
    const all = [proxyKeys, ...typeKeys.values()];
    // A first segment that is a settings group in some schema makes a span a key path; others are fields, attributes …
    const groups = new Set(
      all.flatMap((k) => [...k.keys.values()].filter((key) => key.kind === 'object').map((key) => key.path.split('.')[0])),
    );
    const problems = docs.flatMap((doc) =>
      doc.spans
        .filter((s) => /^[a-z][A-Za-z]*(\.[a-zA-Z*]+)+$/.test(s.value) && groups.has(s.value.split('.')[0]))
        .filter((s) => all.every((known) => keyProblem(known, s.value) !== undefined))
        .map((s) => `${s.where}: ${s.value} is not a key of the proxy or of any interceptor type`),
    );
    expect(problems).toEqual([]);
  });
});

describe('exit codes', () => {
  const names = Object.keys(ExitCode) as ExitCodeName[];

  test('every exit code a doc gives is one of the table, and a code named is the code of that name', () => {
    const problems = docs.flatMap((doc) =>
      doc.prose.flatMap((text, i) => [
        ...[...text.matchAll(/\bexits?(?: code| status)? (\d+)\b/gi)]
          .filter((m) => !Object.values(ExitCode).includes(Number(m[1]) as never))
          .map((m) => `${doc.file}:${i + 1}: exit code ${m[1]} does not exist (src/commands/exit-codes.ts)`),
        ...[...text.matchAll(/\b(\d+) \(`([A-Z_]+)`\)/g)]
          .filter((m) => names.includes(m[2] as ExitCodeName) && ExitCode[m[2] as ExitCodeName] !== Number(m[1]))
          .map((m) => `${doc.file}:${i + 1}: ${m[2] ?? ''} is exit code ${ExitCode[m[2] as ExitCodeName]}, not ${m[1] ?? ''}`),
      ]),
    );
    expect(problems).toEqual([]);
  });

  test('an "Exit status:" sentence gives each code with its name, and exactly the codes of the command it follows', () => {
    const problems: string[] = [];
    for (const doc of docs) {
      const shown = commandLines(doc);
      doc.prose.forEach((text, i) => {
        const start = text.indexOf('Exit status:');
        if (start === -1) return;
        const sentence = `${text.slice(start)} ${doc.prose.slice(i + 1, i + 4).join(' ')}`.split(/\.(?:\s|$)/)[0] ?? '';
        const where = `${doc.file}:${i + 1}`;
        const bare = [...sentence.matchAll(/\b(\d+)\b(?! \(`[A-Z_]+`\))/g)].map((m) => m[1]);
        if (bare.length > 0)
          problems.push(`${where}: write each exit code with its name, e.g. "3 (\`INPUT_INVALID\`)": ${bare.join(', ')}`);
        const given = [...sentence.matchAll(/\b(\d+) \(`[A-Z_]+`\)/g)].map((m) => Number(m[1]));
        const command = shown.filter((c) => c.line <= i + 1).pop();
        const found = command === undefined ? undefined : commandOf(command.text, commands);
        if (found?.command === undefined) {
          problems.push(`${where}: no command line of a known command comes before it`);
          return;
        }
        const expected = exitCodesOf(found.command);
        if (JSON.stringify(given) !== JSON.stringify(expected)) {
          problems.push(`${where}: cri-proxy ${found.command.name} exits with ${expected.join(', ')}, the doc says ${given.join(', ')}`);
        }
      });
    }
    expect(problems).toEqual([]);
  });
});

describe('command lines', () => {
  test('every command line a doc shows names a command, with options that command has', () => {
    const problems = docs.flatMap((doc) =>
      commandLines(doc).flatMap((line) => {
        const found = commandOf(line.text, commands);
        if (found.problem !== undefined) return [`${line.where}: ${line.text}: ${found.problem}`];
        const known = optionsOf(found.help);
        return found.options.filter((o) => !known.has(o)).map((o) => `${line.where}: ${line.text}: ${o} is not an option of it`);
      }),
    );
    expect(problems).toEqual([]);
  });
});

describe('files and links', () => {
  const roots = new Set([...readdirSync(ROOT)].filter((entry) => entry !== 'node_modules' && !entry.startsWith('.git')));

  test('every repository path a doc names exists (a dist/ path: its source)', () => {
    const problems = docs.flatMap((doc) =>
      doc.spans
        .map((s) => ({ ...s, path: s.value.replace(/^\.\//, '') }))
        .filter((s) => /^[\w.-]+(\/[\w.*-]*)*$/.test(s.path) && roots.has(s.path.split('/')[0] ?? ''))
        .filter((s) => s.path.includes('/') || !s.path.includes('*'))
        .flatMap((s) => {
          const file = fileInRepository(s.path);
          return file === undefined || existsSync(join(ROOT, file)) ? [] : [`${s.where}: ${s.value} does not exist`];
        }),
    );
    expect(problems).toEqual([]);
  });

  test('every relative link leads to a file, and every #anchor to a heading', () => {
    const byFile = new Map(docs.map((d) => [d.file, d]));
    const problems = docs.flatMap((doc) =>
      doc.links
        .filter((l) => !/^[a-z]+:/.test(l.value))
        .flatMap((link) => {
          const [target = '', anchor] = link.value.split('#');
          const file = target === '' ? doc.file : join(doc.file, '..', target);
          if (!existsSync(join(ROOT, file))) return [`${link.where}: ${link.value}: ${file} does not exist`];
          const anchors = byFile.get(file)?.anchors;
          if (anchor !== undefined && anchors !== undefined && !anchors.has(anchor))
            return [`${link.where}: ${link.value}: no heading #${anchor} in ${file}`];
          return [];
        }),
    );
    expect(problems).toEqual([]);
  });
});

/** The file of the repository a path names: build outputs by their sources; undefined when there is none to check. */
function fileInRepository(path: string): string | undefined {
  // Written by scripts/build-info.sh during `npm run build`.
  if (path === 'dist/build-info.json') return undefined;
  // `npm run build` compiles each .ts file into dist/.
  if (path.startsWith('dist/')) return path.slice('dist/'.length).replace(/\.js$/, '.ts');
  // Written by ./scripts/release.sh.
  if (path.startsWith('release/')) return undefined;
  return path;
}
