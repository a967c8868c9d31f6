/**
 * Bundles the command into one CommonJS file for the release's single executable, and writes the Node SEA
 * config that embeds it with the files the program reads at run time. Run by scripts/release.sh:
 *   node dist/scripts/bundle.js OUT_DIR
 */
import { writeFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { join, resolve } from 'node:path';
import { build, type Metafile, type Plugin } from 'esbuild';
import { CRI_PROTO_FILE } from '../src/messages/codec';
import { BUILD_INFO_FILE, packageRoot } from '../src/package-files';

/** Files the program reads through packageFile(), embedded as SEA assets under their package paths. */
const ASSETS = [CRI_PROTO_FILE, BUILD_INFO_FILE];

/** Names that may be built-in modules (`http`, `node:sea`); isBuiltin() decides. */
const maybeBuiltin = /^(node:)?[a-z0-9_/]+$/;

/**
 * A SEA's main script has no dynamic-import hook: `import('http')` (the OTLP exporter does that) throws there.
 * Bundled modules' import()s become require()s anyway; this turns a built-in module's into one too.
 */
const builtinDynamicImports: Plugin = {
  name: 'builtin-dynamic-imports',
  setup(b) {
    b.onResolve({ filter: maybeBuiltin }, (args) =>
      args.kind === 'dynamic-import' && isBuiltin(args.path) ? { path: args.path, namespace: 'builtin-require' } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'builtin-require' }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(args.path)});`,
      loader: 'js',
    }));
  },
};

/** What the single executable could not load: any import left outside the bundle but a static built-in. */
function unloadable(metafile: Metafile): string[] {
  return Object.values(metafile.outputs).flatMap((output) =>
    output.imports.filter((i) => i.external && (i.kind === 'dynamic-import' || !isBuiltin(i.path))).map((i) => `${i.kind} ${i.path}`),
  );
}

async function main(outDir: string): Promise<void> {
  const root = packageRoot();
  const bundle = join(outDir, 'cri-proxy.js');
  const result = await build({
    entryPoints: [join(root, 'src', 'cli.ts')],
    outfile: bundle,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    // Minified (names of functions and classes kept): the whole script is held in memory, about 8 MB less so.
    minify: true,
    keepNames: true,
    legalComments: 'none',
    metafile: true,
    logLevel: 'warning',
    plugins: [builtinDynamicImports],
  });
  const left = unloadable(result.metafile);
  if (left.length > 0) throw new Error(`the bundle still loads modules from outside: ${left.join(', ')}`);
  const seaConfig = {
    main: bundle,
    output: join(outDir, 'sea-prep.blob'),
    disableExperimentalSEAWarning: true,
    // V8's compiled code in the blob: start-up compiles nothing.
    useCodeCache: true,
    assets: Object.fromEntries(ASSETS.map((asset) => [asset, join(root, asset)])),
  };
  writeFileSync(join(outDir, 'sea-config.json'), `${JSON.stringify(seaConfig, null, 2)}\n`);
}

const outDir = process.argv[2];
if (outDir === undefined) {
  process.stderr.write('usage: node dist/scripts/bundle.js OUT_DIR\n');
  process.exit(2);
}
main(resolve(outDir)).catch((err: unknown) => {
  process.stderr.write(`bundle: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
