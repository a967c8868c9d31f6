/**
 * The proxy variants' config files, built from config/node.yaml (the production example) with every path and
 * address moved into the bench's temp dir: nothing touches /run, /var or /etc, nothing is exported anywhere.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { parse, stringify } from 'yaml';
import { repoRoot } from './paths';

/** `unreachable`: the file's OTLP exporter, sent to a closed local port; `none`: spans built, never exported. */
export type TracingExporterMode = 'unreachable' | 'none';

export interface ProxyVariant {
  readonly name: string;
  /** With the interceptor chain of config/node.yaml, or with none. */
  readonly chain: boolean;
  /** `podStarts.enabled: false`: pod starts neither followed nor kept (they are by default). */
  readonly podStartsOff?: boolean;
}

export const PROXY_VARIANTS: readonly ProxyVariant[] = [
  { name: 'proxy', chain: false },
  { name: 'proxy+chain', chain: true },
  { name: 'proxy-podstarts-off', chain: false, podStartsOff: true },
];

export interface ConfigPlacement {
  /** The variant's own folder in the temp dir; the config, audit log and policy files go here. */
  readonly dir: string;
  readonly listen: string;
  readonly upstream: string;
  readonly tracingExporter: TracingExporterMode;
  /** A loopback port nothing listens on. */
  readonly closedPort: number;
}

type Json = Record<string, unknown>;

const isRecord = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function sourceFile(): string {
  return path.join(repoRoot(), 'config', 'node.yaml');
}

function relocateTracing(config: Json, where: ConfigPlacement): Json {
  const exporter = isRecord(config.exporter) ? config.exporter : {};
  if (where.tracingExporter === 'none' || exporter.type === undefined || exporter.type === 'none')
    return { ...config, exporter: { type: 'none' } };
  const base = `http://127.0.0.1:${where.closedPort}`;
  const endpoint = exporter.type === 'otlp-http' ? `${base}/v1/traces` : base;
  return { ...config, exporter: { ...exporter, endpoint } };
}

function relocateAudit(config: Json, where: ConfigPlacement): Json {
  const file = typeof config.path === 'string' ? path.basename(config.path) : 'audit.log';
  return { ...config, path: path.join(where.dir, 'audit', file) };
}

/** The rules file is copied beside the variant's config, where its relative path then points. */
function relocateImagePolicy(config: Json, where: ConfigPlacement): Json {
  if (typeof config.rulesFile !== 'string') return config;
  const from = path.resolve(path.dirname(sourceFile()), config.rulesFile);
  const to = path.join(where.dir, 'policies', path.basename(from));
  mkdirSync(path.dirname(to), { recursive: true });
  copyFileSync(from, to);
  return { ...config, rulesFile: to };
}

const RELOCATORS: Readonly<Record<string, (config: Json, where: ConfigPlacement) => Json>> = {
  tracing: relocateTracing,
  audit: relocateAudit,
  'image-policy': relocateImagePolicy,
};

function relocateEntry(entry: unknown, where: ConfigPlacement): unknown {
  if (!isRecord(entry) || typeof entry.type !== 'string') return entry;
  const relocate = RELOCATORS[entry.type];
  if (relocate === undefined) return entry;
  return { ...entry, config: relocate(isRecord(entry.config) ? entry.config : {}, where) };
}

/**
 * Every file and socket the config names must be the runtime's socket or inside the variant's dir: an entry of
 * a kind this file does not know how to move fails loudly here instead of writing to the node's paths.
 */
function assertContained(value: unknown, where: ConfigPlacement, at: string): void {
  if (typeof value === 'string') {
    const file = value.startsWith('unix:') ? value.replace(/^unix:(\/\/)?/, '') : value;
    if (file.startsWith('/') && file !== where.upstream && !file.startsWith(`${where.dir}${path.sep}`)) {
      throw new Error(`${sourceFile()}: ${at} = "${value}" is outside the bench's temp dir; teach bench/proxy-config.ts to move it`);
    }
  } else if (Array.isArray(value)) value.forEach((v, i) => assertContained(v, where, `${at}[${i}]`));
  else if (isRecord(value)) for (const [k, v] of Object.entries(value)) assertContained(v, where, at === '' ? k : `${at}.${k}`);
}

/** Writes the variant's config into `where.dir` and returns its path. */
export function writeProxyConfig(variant: ProxyVariant, where: ConfigPlacement): string {
  const source: unknown = parse(readFileSync(sourceFile(), 'utf8'));
  if (!isRecord(source)) throw new Error(`${sourceFile()}: not a mapping`);
  const backends = source.backends;
  if (!Array.isArray(backends) || backends.length !== 1 || !isRecord(backends[0])) {
    throw new Error(`${sourceFile()}: the bench expects exactly one backend`);
  }
  mkdirSync(where.dir, { recursive: true });
  const interceptors = Array.isArray(source.interceptors) ? source.interceptors : [];
  const config: Json = {
    ...source,
    listen: `unix://${where.listen}`,
    // An admin listener as on a node, on a port the OS picks (9464 may be taken on a shared machine).
    http: { ...(isRecord(source.http) ? source.http : {}), listen: '127.0.0.1:0' },
    backends: [{ ...backends[0], endpoint: `unix://${where.upstream}` }],
    // Only so that stopping the bench's proxies is quick.
    shutdownGraceSeconds: 1,
    interceptors: variant.chain ? interceptors.map((e) => relocateEntry(e, where)) : [],
    ...(variant.podStartsOff === true ? { podStarts: { ...(isRecord(source.podStarts) ? source.podStarts : {}), enabled: false } } : {}),
  };
  assertContained(config, where, '');
  const file = path.join(where.dir, 'cri-proxy.yaml');
  writeFileSync(file, `# Built by the bench from config/node.yaml (${variant.name}).\n${stringify(config)}`);
  return file;
}

/** Lets a variant's copy of the rules file allow `images` too (from a registry only this run knows). */
export function allowImages(variantDir: string, images: readonly string[]): void {
  if (images.length === 0) return;
  const dir = path.join(variantDir, 'policies');
  for (const file of existsSync(dir) ? readdirSync(dir) : []) {
    const rules = parse(readFileSync(path.join(dir, file), 'utf8')) as Record<string, unknown>;
    const existing: unknown[] = Array.isArray(rules.rules) ? (rules.rules as unknown[]) : [];
    rules.rules = [{ name: 'bench-registry', match: { images }, action: 'allow' }, ...existing];
    writeFileSync(path.join(dir, file), stringify(rules));
  }
}
