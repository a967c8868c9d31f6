import { compileRouting, type PodFacts, type RoutingPolicy } from '../../src/policies/routing-rules';

const pod = (facts: Partial<PodFacts>): PodFacts => ({ handler: '', namespace: 'default', labels: {}, annotations: {}, ...facts });

// The example of docs/routing.md, plus label and glob-valued rules.
const policy: RoutingPolicy = {
  defaultBackend: 'containerd',
  rules: [
    { backend: 'crio', match: { runtimeHandlers: ['crio', 'kata-*'] } },
    { name: 'sandboxed', backend: 'crio', match: { namespaces: ['sandboxed', 'untrusted-*'] } },
    { backend: 'crio', match: { annotations: { 'cri-proxy.io/backend': 'crio' } } },
    { name: 'gpu', backend: 'gpu', match: { labels: { accelerator: 'nvidia-*', tier: 'batch' }, namespaces: ['ml'] } },
    { name: 'empty-handler-in-legacy', backend: 'legacy', match: { runtimeHandlers: [''], namespaces: ['legacy'] } },
  ],
  handlers: { crio: { crio: '', 'kata-fast': 'kata' }, gpu: { '': 'nvidia' } },
};
const routing = compileRouting(policy);

describe('rule matching', () => {
  test.each<[string, Partial<PodFacts>, string, string | undefined]>([
    ['no RuntimeClass, plain namespace: default', {}, 'containerd', undefined],
    ['handler listed by name', { handler: 'crio' }, 'crio', 'rules[0]'],
    ['handler matching a glob', { handler: 'kata-fast' }, 'crio', 'rules[0]'],
    ['glob needs its prefix', { handler: 'kata' }, 'containerd', undefined],
    ['unknown handler: default', { handler: 'runc' }, 'containerd', undefined],
    ['namespace by name', { namespace: 'sandboxed' }, 'crio', 'sandboxed'],
    ['namespace by glob', { namespace: 'untrusted-42' }, 'crio', 'sandboxed'],
    ['namespace glob is anchored', { namespace: 'not-untrusted-42' }, 'containerd', undefined],
    ['annotation with the exact value', { annotations: { 'cri-proxy.io/backend': 'crio' } }, 'crio', 'rules[2]'],
    ['annotation with another value', { annotations: { 'cri-proxy.io/backend': 'containerd' } }, 'containerd', undefined],
    ['a label is not an annotation', { labels: { 'cri-proxy.io/backend': 'crio' } }, 'containerd', undefined],
    ['every criterion of a rule must hold', { namespace: 'ml', labels: { accelerator: 'nvidia-a100', tier: 'batch' } }, 'gpu', 'gpu'],
    ['a missing label fails the rule', { namespace: 'ml', labels: { accelerator: 'nvidia-a100' } }, 'containerd', undefined],
    ['a label value glob must match', { namespace: 'ml', labels: { accelerator: 'amd-mi300', tier: 'batch' } }, 'containerd', undefined],
    ['all labels, wrong namespace', { namespace: 'web', labels: { accelerator: 'nvidia-a100', tier: 'batch' } }, 'containerd', undefined],
    ['first match wins', { handler: 'crio', namespace: 'ml', labels: { accelerator: 'nvidia-x', tier: 'batch' } }, 'crio', 'rules[0]'],
    ['"" matches only the pod without a RuntimeClass', { namespace: 'legacy' }, 'legacy', 'empty-handler-in-legacy'],
    ['a handler is not ""', { namespace: 'legacy', handler: 'runc' }, 'containerd', undefined],
  ])('%s', (_name, facts, backend, rule) => {
    const placement = routing.place(pod(facts));
    expect([placement.backend, placement.rule]).toEqual([backend, rule]);
  });

  test('no rules: everything goes to the default backend', () => {
    const none = compileRouting({ defaultBackend: 'a', rules: [], handlers: {} });
    expect(none.place(pod({ handler: 'kata', namespace: 'x' }))).toEqual({
      backend: 'a',
      rule: undefined,
      requestedHandler: 'kata',
      handler: 'kata',
    });
  });

  test('label keys are matched exactly; an inherited property is no label', () => {
    const r = compileRouting({ defaultBackend: 'a', rules: [{ backend: 'b', match: { labels: { toString: '*' } } }], handlers: {} });
    expect(r.place(pod({ labels: {} })).backend).toBe('a');
    expect(r.place(pod({ labels: { toString: 'x' } })).backend).toBe('b');
  });

  test.each<[string, string, boolean]>([
    ['*', '', true],
    ['*', 'anything', true],
    ['a*', 'a', true],
    ['a*b', 'ab', true],
    ['a*b', 'aXb', true],
    ['a*b', 'aXbY', false],
    ['*-*', 'a-b', true],
    ['*-*', 'ab', false],
    ['a*a', 'a', false],
    ['x**y', 'xy', true],
    ['a*b*c', 'abbc', true],
    ['a*b*c', 'acb', false],
    ['a.b', 'aXb', false],
  ])('glob %j against %j: %s', (glob, value, expected) => {
    const r = compileRouting({ defaultBackend: 'd', rules: [{ backend: 'm', match: { namespaces: [glob] } }], handlers: {} });
    expect(r.place(pod({ namespace: value })).backend === 'm').toBe(expected);
  });
});

describe('handler rewrite', () => {
  test.each<[string, Partial<PodFacts>, string, string]>([
    ['mapped to the backend default', { handler: 'crio' }, 'crio', ''],
    ['mapped to another name', { handler: 'kata-fast' }, 'crio', 'kata'],
    ['not in the map: unchanged', { handler: 'kata-slow' }, 'crio', 'kata-slow'],
    ['"" mapped for a backend', { namespace: 'ml', labels: { accelerator: 'nvidia-1', tier: 'batch' } }, 'gpu', 'nvidia'],
    ['the default backend has no map', { handler: 'runc' }, 'containerd', 'runc'],
  ])('%s', (_name, facts, backend, handler) => {
    const placement = routing.place(pod(facts));
    expect(placement).toMatchObject({ backend, handler, requestedHandler: facts.handler ?? '' });
  });

  test('translateHandler and its inverse', () => {
    expect(routing.translateHandler('crio', 'kata-fast')).toBe('kata');
    expect(routing.translateHandler('containerd', 'kata-fast')).toBe('kata-fast');
    expect(routing.kubeletNamesOf('crio', 'kata')).toEqual(['kata-fast']);
    expect(routing.kubeletNamesOf('crio', '')).toEqual(['crio']);
    expect(routing.kubeletNamesOf('crio', 'runc')).toEqual([]);
    expect(routing.kubeletNamesOf('nowhere', 'x')).toEqual([]);
  });
});

describe('requests', () => {
  const sandboxConfig = {
    metadata: { name: 'p', namespace: 'sandboxed', uid: 'u1', attempt: 0 },
    labels: { app: 'web' },
    annotations: { note: 'x' },
  };

  test('RunPodSandbox and RestorePod: config and runtime_handler', () => {
    expect(routing.placeSandbox({ config: sandboxConfig, runtime_handler: 'kata-fast' })).toEqual({
      backend: 'crio',
      rule: 'rules[0]',
      requestedHandler: 'kata-fast',
      handler: 'kata',
    });
    expect(routing.placeSandbox({ config: sandboxConfig })).toMatchObject({ backend: 'crio', rule: 'sandboxed', handler: '' });
    expect(routing.placeSandbox({ config: { ...sandboxConfig, metadata: { namespace: 'web' } } })).toMatchObject({ backend: 'containerd' });
  });

  test('a request without config goes to the default backend', () => {
    expect(routing.placeSandbox(undefined)).toMatchObject({ backend: 'containerd', handler: '' });
    expect(routing.placeSandbox({ config: 'not a message', runtime_handler: 7 })).toMatchObject({ backend: 'containerd', handler: '' });
  });

  test('labels and annotations that are not string maps read as empty', () => {
    const r = compileRouting({ defaultBackend: 'a', rules: [{ backend: 'b', match: { labels: { app: '*' } } }], handlers: {} });
    expect(r.placeSandbox({ config: { labels: ['app'] } }).backend).toBe('a');
    expect(r.placeSandbox({ config: { labels: { app: 1 } } }).backend).toBe('a');
    expect(r.placeSandbox({ config: { labels: { app: '' } } }).backend).toBe('b');
  });

  test('PullImage: the sandbox config and the image handler', () => {
    expect(routing.placeImagePull({ image: { image: 'busybox', runtime_handler: 'kata-fast' } })).toMatchObject({
      backend: 'crio',
      handler: 'kata',
    });
    expect(routing.placeImagePull({ image: { image: 'busybox' }, sandbox_config: sandboxConfig })).toMatchObject({
      backend: 'crio',
      rule: 'sandboxed',
    });
    expect(routing.placeImagePull({ image: { image: 'busybox' } })).toMatchObject({ backend: 'containerd', rule: undefined });
  });
});
