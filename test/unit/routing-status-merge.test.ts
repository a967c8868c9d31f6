import { ProxyError } from '../../src/errors';
import type { NamedReply } from '../../src/interceptors/routing/backend-call';
import { mergedStatus, mergeStatus } from '../../src/interceptors/routing/status-merge';
import { compileRouting } from '../../src/policies/routing-rules';
import { decodeMessage } from '../../src/messages/codec';
import { lengthDelimited, wireFields } from '../../src/messages/protobuf-wire';
import { encode, fail, fakeCall, ok, withUnknown } from '../support/fake-backends';

const routing = compileRouting({ defaultBackend: 'containerd', rules: [], handlers: { crio: { crio: '', 'kata-fast': 'kata' } } });
const names = routing.kubeletNamesOf;

interface Cond {
  type: string;
  status?: boolean;
  reason?: string;
  message?: string;
}
const ready: Cond[] = [
  { type: 'RuntimeReady', status: true },
  { type: 'NetworkReady', status: true },
];

function status(conditions: Cond[], extra: Record<string, unknown> = {}): Buffer {
  return encode('StatusResponse', { status: { conditions }, ...extra });
}

const named = (backend: string, reply: NamedReply['reply']): NamedReply => ({ backend, reply });

function merged(replies: NamedReply[]): Record<string, unknown> {
  const answer = mergeStatus(replies, names);
  expect(answer.code).toBe(0);
  return decodeMessage('runtime.v1.StatusResponse', answer.body ?? Buffer.alloc(0));
}

const conditionsOf = (m: Record<string, unknown>): Cond[] => (m['status'] as { conditions: Cond[] }).conditions;

describe('conditions', () => {
  test('true on every backend: true, as the default backend words it', () => {
    const m = merged([
      named(
        'containerd',
        ok(
          status([
            { type: 'RuntimeReady', status: true, reason: 'Fine' },
            { type: 'NetworkReady', status: true },
          ]),
        ),
      ),
      named('crio', ok(status(ready))),
    ]);
    expect(conditionsOf(m)).toEqual([
      { type: 'RuntimeReady', status: true, reason: 'Fine' },
      { type: 'NetworkReady', status: true },
    ]);
  });

  test('false on one backend: false, with its reason and a message naming it', () => {
    const m = merged([
      named('containerd', ok(status(ready))),
      named(
        'crio',
        ok(
          status([
            { type: 'RuntimeReady', status: true },
            { type: 'NetworkReady', status: false, reason: 'NetworkPluginNotReady', message: 'cni config uninitialized' },
          ]),
        ),
      ),
    ]);
    expect(conditionsOf(m)).toEqual([
      { type: 'RuntimeReady', status: true },
      { type: 'NetworkReady', reason: 'NetworkPluginNotReady', message: 'backend "crio": cni config uninitialized' },
    ]);
  });

  test("false on several: the first one's reason, every one named", () => {
    const m = merged([
      named(
        'containerd',
        ok(
          status([
            { type: 'RuntimeReady', status: false, reason: 'A', message: 'a down' },
            { type: 'NetworkReady', status: true },
          ]),
        ),
      ),
      named(
        'crio',
        ok(
          status([
            { type: 'RuntimeReady', status: false, reason: 'B' },
            { type: 'NetworkReady', status: true },
          ]),
        ),
      ),
    ]);
    expect(conditionsOf(m)[0]).toEqual({ type: 'RuntimeReady', reason: 'A', message: 'backend "containerd": a down; backend "crio": B' });
  });

  test('a required condition a backend does not report counts as false there', () => {
    const m = merged([named('containerd', ok(status(ready))), named('crio', ok(status([{ type: 'RuntimeReady', status: true }])))]);
    expect(conditionsOf(m)[1]).toEqual({
      type: 'NetworkReady',
      reason: 'ConditionNotReported',
      message: 'backend "crio": does not report NetworkReady',
    });
  });

  test("a condition only one backend reports is that backend's", () => {
    const warn = { type: 'ContainerdHasNoDeprecationWarnings', status: false, reason: 'Deprecated', message: 'old config' };
    const m = merged([named('containerd', ok(status([...ready, warn]))), named('crio', ok(status(ready)))]);
    expect(conditionsOf(m)).toEqual([...ready, { type: warn.type, reason: 'Deprecated', message: 'backend "containerd": old config' }]);
    const ok2 = merged([named('containerd', ok(status([...ready, { ...warn, status: true }]))), named('crio', ok(status(ready)))]);
    expect(conditionsOf(ok2)[2]?.status).toBe(true);
  });

  test('a backend that does not answer makes the required conditions false, naming it', () => {
    const m = merged([named('containerd', ok(status(ready))), named('crio', fail(14, 'connect ENOENT'))]);
    expect(conditionsOf(m)).toEqual([
      { type: 'RuntimeReady', reason: 'BackendUnavailable', message: 'backend "crio": did not answer Status: UNAVAILABLE: connect ENOENT' },
      { type: 'NetworkReady', reason: 'BackendUnavailable', message: 'backend "crio": did not answer Status: UNAVAILABLE: connect ENOENT' },
    ]);
  });

  test('no backend answers: the call fails naming each', () => {
    const answer = mergeStatus([named('containerd', fail(14, 'down')), named('crio', fail(14, 'down too'))], names);
    expect(answer.code).toBe(14);
    expect(answer.message).toBe(
      'cri-proxy: Status needs every backend; backend "containerd" failed: UNAVAILABLE: down; backend "crio" failed: UNAVAILABLE: down too',
    );
  });

  test('a malformed Status names the backend', () => {
    expect(() => mergeStatus([named('crio', ok(Buffer.from([0x0a, 0x09])))], names)).toThrow(ProxyError);
    expect(() => mergeStatus([named('crio', ok(Buffer.from([0x0a, 0x09])))], names)).toThrow(/backend "crio" sent a malformed/);
  });
});

describe('runtime handlers', () => {
  const handler = (name: string, features: Record<string, boolean> = {}): Record<string, unknown> => ({ name, features });

  test("the union, in kubelet's names, each backend's entry as it sent it", () => {
    const m = merged([
      named('containerd', ok(status(ready, { runtime_handlers: [handler(''), handler('runc', { user_namespaces: true })] }))),
      named(
        'crio',
        ok(status(ready, { runtime_handlers: [handler('', { recursive_read_only_mounts: true }), handler('kata'), handler('runc')] })),
      ),
    ]);
    expect(m['runtime_handlers']).toEqual([
      { name: '', features: {} },
      { name: 'runc', features: { user_namespaces: true } },
      { name: 'crio', features: { recursive_read_only_mounts: true } },
      { name: 'kata-fast', features: {} },
    ]);
  });

  test('fields this schema does not know survive, renamed or not', () => {
    const kept = withUnknown(encode('RuntimeHandler', { name: 'runc' }), 'runc-extra');
    const renamed = withUnknown(encode('RuntimeHandler', { name: 'kata', features: { user_namespaces: true } }), 'kata-extra');
    const crio = Buffer.concat([status(ready), lengthDelimited(3, renamed)]);
    const containerd = Buffer.concat([status(ready), lengthDelimited(3, kept)]);
    const answer = mergeStatus([named('containerd', ok(containerd)), named('crio', ok(crio))], names);
    const body = answer.body ?? Buffer.alloc(0);
    const handlers = wireFields(body)
      .filter((f) => f.number === 3)
      .map((f) => body.subarray(f.valueStart, f.end));
    expect(handlers[0]).toEqual(kept);
    expect(handlers[1]?.toString()).toContain('kata-extra');
    expect(decodeMessage('runtime.v1.RuntimeHandler', handlers[1] ?? Buffer.alloc(0))).toEqual({
      name: 'kata-fast',
      features: { user_namespaces: true },
    });
  });
});

test('features: claimed only when every answering backend claims them', () => {
  const m = merged([
    named('containerd', ok(status(ready, { features: { supplemental_groups_policy: true, mount_options: true } }))),
    named('crio', ok(status(ready, { features: { supplemental_groups_policy: true } }))),
  ]);
  expect(m['features']).toEqual({ supplemental_groups_policy: true });
});

test("info: the default backend's keys as they are, the others' under their backend", () => {
  const m = merged([
    named('containerd', ok(status(ready, { info: { config: '{"a":1}' } }))),
    named('crio', ok(status(ready, { info: { config: '{"b":2}', golang: '"go1.22"' } }))),
  ]);
  expect(m['info']).toEqual({ config: '{"a":1}', 'crio/config': '{"b":2}', 'crio/golang': '"go1.22"' });
});

test("with the default backend down, the others' info stays under their names", () => {
  const replies = [
    named('containerd', fail(14, 'down')),
    named('crio', ok(withUnknown(status(ready, { info: { config: '{}' } }), 'crio-top'))),
  ];
  expect(merged(replies)['info']).toEqual({ 'crio/config': '{}' });
  // Unknown top-level fields are the default backend's only.
  expect(mergeStatus(replies, names).body?.toString()).not.toContain('crio-top');
});

test('features are compared on the wire: a flag this schema does not know is kept when every backend has it', () => {
  const future = (value: number): Buffer => Buffer.from([0x98, 0x06, value]); // field 99, a varint
  const withFeatures = (...entries: Buffer[]): Buffer =>
    Buffer.concat([status(ready), lengthDelimited(4, Buffer.concat([encode('RuntimeFeatures', { mount_options: true }), ...entries]))]);
  const featuresOf = (replies: NamedReply[]): number[][] => {
    const body = mergeStatus(replies, names).body ?? Buffer.alloc(0);
    const field = wireFields(body).find((f) => f.number === 4);
    if (field === undefined) return [];
    const features = body.subarray(field.valueStart, field.end);
    return wireFields(features).map((f) => [f.number, ...features.subarray(f.start, f.end)]);
  };
  expect(featuresOf([named('containerd', ok(withFeatures(future(1)))), named('crio', ok(withFeatures(future(1))))])).toEqual([
    [3, 0x18, 1],
    [99, 0x98, 0x06, 1],
  ]);
  // One backend lacks it, or says something else of it: not claimed.
  expect(featuresOf([named('containerd', ok(withFeatures(future(1)))), named('crio', ok(withFeatures()))])).toEqual([[3, 0x18, 1]]);
  expect(featuresOf([named('containerd', ok(withFeatures(future(1)))), named('crio', ok(withFeatures(future(2))))])).toEqual([
    [3, 0x18, 1],
  ]);
  // A backend that reports no features at all: none is claimed, and the field is left out.
  expect(featuresOf([named('containerd', ok(withFeatures(future(1)))), named('crio', ok(status(ready)))])).toEqual([]);
});

test("fields of the default backend's RuntimeStatus this schema does not know are kept beside the combined conditions", () => {
  const withStatusExtra = (text: string): Buffer =>
    Buffer.concat([lengthDelimited(1, withUnknown(encode('RuntimeStatus', { conditions: ready }), text))]);
  const answer = mergeStatus(
    [named('containerd', ok(withStatusExtra('status-extra'))), named('crio', ok(withStatusExtra('crio-extra')))],
    names,
  );
  const body = answer.body ?? Buffer.alloc(0);
  expect(body.toString()).toContain('status-extra');
  expect(body.toString()).not.toContain('crio-extra');
  expect(conditionsOf(decodeMessage('runtime.v1.StatusResponse', body))).toEqual(ready);
});

test("fields of the default backend's answer this schema does not know are kept", () => {
  const answer = mergeStatus(
    [named('containerd', ok(withUnknown(status(ready), 'top-level'))), named('crio', ok(withUnknown(status(ready), 'other')))],
    names,
  );
  const body = answer.body ?? Buffer.alloc(0);
  expect(body.toString()).toContain('top-level');
  expect(body.toString()).not.toContain('other');
});

test('mergedStatus asks every backend with the request as given', async () => {
  const request = encode('StatusRequest', { verbose: true });
  const { call, calls } = fakeCall({ containerd: { Status: ok(status(ready)) }, crio: { Status: ok(status(ready)) } });
  const answer = await mergedStatus(
    { call, backends: ['containerd', 'crio'], metadata: [], deadline: 7 },
    '/runtime.v1.RuntimeService/Status',
    request,
    names,
    () => undefined,
  );
  expect(answer.code).toBe(0);
  expect(calls.filter((c) => c.method === 'Status').map((c) => [c.backend, c.request.equals(request), c.deadline])).toEqual([
    ['containerd', true, 7],
    ['crio', true, 7],
  ]);
});
