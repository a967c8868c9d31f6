/**
 * `config print` shows every default: a key a schema lets users leave out either has its default in the schema
 * (so the validated config, and what `config print` prints, carries it) or is listed here with what leaving it
 * out means. A default applied later in code (`config.x ?? 5`) would be invisible to `config print`.
 */
import { parse } from 'yaml';
import { builtinTypes } from '../../src/commands/builtin-types';
import { printConfig } from '../../src/commands/config';
import { proxyConfigSchema } from '../../src/config/schema';
import { builtinInterceptorTypes } from '../../src/interceptors';
import { MINIMAL_CONFIGS, schemaKeys, valueAt } from '../support/schema-keys';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** `<type> <path>` (`proxy` for the proxy's own keys) → what leaving the key out means: no value to print. */
const ABSENCE_MEANS: Readonly<Record<string, string>> = {
  'proxy interceptors[].methods': 'every method',
  'proxy interceptors[].config': "the type's own defaults, which are printed",
  'tracing exporter.endpoint': "the exporter's own default, which the OTEL_EXPORTER_OTLP_* environment variables can set",
  'tracing exporter.headers': 'no headers',
  'tracing podStart.settleMs': 'refused when given: moved to podStarts.settleMs',
  'tracing podStart.maxPods': 'refused when given: moved to podStarts.maxStarting',
  'tracing podStart.ttlMs': 'refused when given: moved to podStarts.ttlMs',
  'metrics podStart.settleMs': 'refused when given: moved to podStarts.settleMs',
  'metrics podStart.maxPods': 'refused when given: moved to podStarts.maxStarting',
  'metrics podStart.ttlMs': 'refused when given: moved to podStarts.ttlMs',
  'audit keyFile': 'an unkeyed chain',
  'image-policy rules': 'exactly one of rules and rulesFile is given',
  'image-policy rulesFile': 'exactly one of rules and rulesFile is given',
  'image-policy mode': 'the rules file sets it (with inline rules the default is filled in)',
  'image-policy defaultAction': 'the rules file sets it (with inline rules the default is filled in)',
  'image-policy rules[].namespaces': 'every namespace',
  'image-policy whenLookupFails': 'deny, or what the old failOpen key says (filled in, so config print shows it)',
  'image-policy failOpen': 'the old name of whenLookupFails, which decides (config print shows only that)',
  'image-policy rules[].verify': 'no signature is asked for',
  'image-policy rules[].verify[].keys': 'exactly one of keys and keyless is given',
  'image-policy rules[].verify[].keyless.issuer': 'exactly one of issuer and issuerRegExp is given',
  'image-policy rules[].verify[].keyless.issuerRegExp': 'exactly one of issuer and issuerRegExp is given',
  'image-policy rules[].verify[].keyless.subject': 'exactly one of subject and subjectRegExp is given',
  'image-policy rules[].verify[].keyless.subjectRegExp': 'exactly one of subject and subjectRegExp is given',
  'image-policy rules[].onUnverifiable': 'deny (it applies to a rule with verify only)',
  'image-policy authFile': 'no credentials for registries without an authFile of their own',
  'image-policy registries.*.authFile': "the interceptor's authFile",
  'image-policy registries.*.caFile': "the system's CAs only",
  'routing rules[].name': 'the rule is named by its place, rules[i]',
  'routing rules[].match.runtimeHandlers': 'any handler',
  'routing rules[].match.namespaces': 'any namespace',
  'routing rules[].match.labels': 'any labels',
  'routing rules[].match.annotations': 'any annotations',
};

const schemas = [['proxy', proxyConfigSchema] as const, ...builtinInterceptorTypes.map((type) => [type.name, type.schema] as const)];

test.each(schemas)('every key of %s that may be left out has a default, or a meaning of its own when absent', (name, schema) => {
  const undefaulted = schemaKeys(schema)
    .filter((key) => key.optional && key.default === undefined && key.kind !== 'object')
    .map((key) => `${name} ${key.path}`);
  const listed = Object.keys(ABSENCE_MEANS).filter((key) => key.startsWith(`${name} `));
  // A key missing from the list needs a `.default()` in its schema (or, if absence means something, an entry above).
  expect(undefaulted.sort()).toEqual(listed.sort());
});

test.each(builtinInterceptorTypes.map((type) => [type.name, type] as const))('config print shows every default of %s', (name, type) => {
  const dir = mkdtempSync(join(tmpdir(), 'cri-proxy-defaults-'));
  const file = join(dir, 'c.yaml');
  const entry = { name: 'x', type: name, config: MINIMAL_CONFIGS[name] ?? {} };
  writeFileSync(
    file,
    JSON.stringify({ backends: [{ name: 'containerd', endpoint: '/run/containerd/containerd.sock' }], interceptors: [entry] }),
  );
  let out = '';
  let err = '';
  expect(printConfig(file, {}, { out: (t) => (out += t), err: (t) => (err += t) })).toBe(0);
  expect(err).toBe('');
  const printed = (parse(out) as { interceptors: { config: unknown }[] }).interceptors[0]?.config;
  const missing = schemaKeys(type.schema)
    .filter((key) => key.alwaysPresent && key.default !== undefined)
    .filter((key) => valueAt(printed, key.path) === undefined)
    .map((key) => key.path);
  expect(missing).toEqual([]);
  expect(builtinTypes().get(name)).toBe(type);
});
