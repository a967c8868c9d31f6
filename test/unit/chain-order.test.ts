/** Chain order is enforced, not documented: what each type declares about its place makes a config invalid. */
import { z } from 'zod';
import { defineInterceptorType, InterceptorTypes } from '../../src/chain/interceptor-types';
import { builtinInterceptorTypes } from '../../src/interceptors';
import { ConfigError, parseConfig } from '../../src/config/load';

const BACKENDS = `backends:
  - { name: a, endpoint: /run/a.sock, default: true }
  - { name: b, endpoint: /run/b.sock }
`;
const POLICY = '{ defaultAction: allow, rules: [] }';

const entry = {
  tracing: '{ name: traces, type: tracing, config: { exporter: { type: none } } }',
  metrics: '{ name: counts, type: metrics }',
  audit: '{ name: records, type: audit, config: { path: /var/log/cri-proxy/audit.log } }',
  routing: '{ name: route, type: routing }',
  policy: `{ name: images, type: image-policy, config: ${POLICY} }`,
};

function problems(yaml: string, types = new InterceptorTypes(builtinInterceptorTypes)): [string, string][] {
  try {
    parseConfig(yaml, 't.yaml', types);
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => [i.path, i.message]);
    throw err;
  }
  return [];
}

const chain = (...entries: string[]): string => `${BACKENDS}interceptors:\n${entries.map((e) => `  - ${e}\n`).join('')}`;

describe('chain order enforced', () => {
  test('the documented chain is valid: observers, then routing, then the image policy', () => {
    expect(problems(chain(entry.tracing, entry.metrics, entry.audit, entry.routing, entry.policy))).toEqual([]);
  });

  test.each([
    ['audit', entry.audit, 'records', 'the audit log would miss the calls it ends'],
    ['metrics', entry.metrics, 'counts', 'the calls it ends would not be counted'],
    ['tracing', entry.tracing, 'traces', 'the calls it ends would have no span'],
  ])('an %s entry after routing is invalid, naming both entries', (type, observer, name, miss) => {
    expect(problems(chain(entry.routing, observer))).toEqual([
      [
        'interceptors[1].type',
        `the ${type} entry "${name}" must come before the routing entry "route" (interceptors[0]), which answers some calls ` +
          `itself (lists, Status and events merged across runtimes, UpdateRuntimeConfig sent to each): after it, ${miss}`,
      ],
    ]);
  });

  test('an audit entry after the image policy is invalid: the denials would go unrecorded', () => {
    expect(problems(chain(entry.policy, entry.audit))).toEqual([
      [
        'interceptors[1].type',
        'the audit entry "records" must come before the image-policy entry "images" (interceptors[0]), which refuses calls ' +
          'naming a denied image: after it, the audit log would miss the calls it ends',
      ],
    ]);
  });

  test('every misplaced observer is reported at once', () => {
    const found = problems(chain(entry.routing, entry.policy, entry.metrics));
    expect(found.map(([path, message]) => [path, message.slice(0, message.indexOf(' (interceptors'))])).toEqual([
      ['interceptors[2].type', 'the metrics entry "counts" must come before the routing entry "route"'],
      ['interceptors[2].type', 'the metrics entry "counts" must come before the image-policy entry "images"'],
    ]);
  });

  test('a rule, not a list of types: any type that ends calls goes after any type that observes every call', () => {
    const pass = (name: string, extra: object) =>
      defineInterceptorType({
        name,
        schema: z.strictObject({}),
        create: (_c, deps) => ({ name: deps.name, intercept: (_x, next) => next() }),
        ...extra,
      });
    const types = new InterceptorTypes([
      pass('cache', { endsCalls: 'answers repeated reads itself' }),
      pass('journal', { observesEveryCall: 'the journal would miss them' }),
    ]);
    expect(problems(`${BACKENDS}interceptors: [{ name: c, type: cache }, { name: j, type: journal }]\n`, types)).toEqual([
      [
        'interceptors[1].type',
        'the journal entry "j" must come before the cache entry "c" (interceptors[0]), which answers repeated reads itself: after it, the journal would miss them',
      ],
    ]);
    expect(problems(`${BACKENDS}interceptors: [{ name: j, type: journal }, { name: c, type: cache }]\n`, types)).toEqual([]);
  });
});

describe('the image policy watches every door', () => {
  const withMethods = (methods: string): string =>
    `${BACKENDS}interceptors: [{ name: images, type: image-policy, methods: ${methods}, config: ${POLICY} }]\n`;

  test('a methods list that leaves a door out is invalid, naming the door', () => {
    expect(problems(withMethods('[PullImage, CreateContainer]'))).toEqual([
      [
        'interceptors[0].methods',
        'leaves out RestorePod, which every image-policy entry must run for (PullImage, CreateContainer, RestorePod); add them or remove "methods"',
      ],
    ]);
  });

  test('without methods, or with every door (globs too), the entry is valid', () => {
    expect(problems(`${BACKENDS}interceptors: [${entry.policy}]\n`)).toEqual([]);
    expect(problems(withMethods('[PullImage, CreateContainer, RestorePod]'))).toEqual([]);
    expect(problems(withMethods('["runtime.v1.ImageService/*", "runtime.v1.RuntimeService/*"]'))).toEqual([]);
  });
});
