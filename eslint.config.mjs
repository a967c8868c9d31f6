import path from 'node:path';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/*
 * The layers of src/, lowest first. A module may import its own folder and any lower layer, never a layer at
 * its own rank or above: message reading (messages/) knows no call, the interceptor contract (chain/) no
 * transport, the data plane (proxy/) nothing of config or interceptors, policies nothing but values.
 */
const LAYERS = [
  ['errors', 'log', 'values', 'package-files', 'scheduler'],
  ['metrics', 'messages'],
  ['policies'],
  ['chain'],
  ['proxy', 'admin'],
  ['observability', 'audit'],
  ['provenance'],
  ['config'],
  ['interceptors'],
  ['app', 'lifecycle'],
  ['commands'],
  ['cli'],
];
/** Folders that never import one below them: interceptors see the call context (chain/), never the transport. */
const NEVER = { interceptors: ['proxy'], observability: ['proxy'], audit: ['proxy'], provenance: ['proxy'] };
const SRC = path.join(import.meta.dirname, 'src');
/** Folders whose modules must stay free of I/O: values in, values out. */
const PURE = new Set(['policies']);

function layerOf(file) {
  const rel = path.relative(SRC, file);
  if (rel.startsWith('..') || path.isAbsolute(rel)) return undefined;
  const name = rel.split(path.sep)[0].replace(/\.ts$/, '');
  const rank = LAYERS.findIndex((layer) => layer.includes(name));
  return rank === -1 ? { name, rank: LAYERS.length } : { name, rank };
}

const layersRule = {
  meta: {
    type: 'problem',
    schema: [],
    messages: {
      upward: '{{from}} must not import {{to}}: it stands above it (see LAYERS in eslint.config.mjs)',
      impure: '{{from}} holds pure decisions: no {{to}}',
      never: '{{from}} must not import {{to}} (see NEVER in eslint.config.mjs)',
    },
  },
  create(context) {
    const from = layerOf(context.filename);
    if (from === undefined) return {};
    const check = (source) => {
      if (source?.type !== 'Literal' || typeof source.value !== 'string') return;
      const spec = source.value;
      if (!spec.startsWith('.')) {
        if (PURE.has(from.name) && (spec.startsWith('node:') || ['fs', 'net', 'http', 'http2', 'child_process'].includes(spec))) {
          context.report({ node: source, messageId: 'impure', data: { from: from.name, to: spec } });
        }
        return;
      }
      const to = layerOf(path.resolve(path.dirname(context.filename), spec));
      if (to === undefined || to.name === from.name) return;
      if (NEVER[from.name]?.includes(to.name)) context.report({ node: source, messageId: 'never', data: { from: from.name, to: to.name } });
      else if (to.rank >= from.rank) context.report({ node: source, messageId: 'upward', data: { from: from.name, to: to.name } });
    };
    return {
      ImportDeclaration: (node) => check(node.source),
      ImportExpression: (node) => check(node.source),
      ExportNamedDeclaration: (node) => check(node.source),
      ExportAllDeclaration: (node) => check(node.source),
    };
  },
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'eslint.config.mjs', 'jest.config.js'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    plugins: { house: { rules: { layers: layersRule } } },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      '@typescript-eslint/no-unnecessary-condition': 'off',
      '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true }],
      'house/layers': 'error',
    },
  },
);
