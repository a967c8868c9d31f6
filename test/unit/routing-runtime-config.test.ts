import { compareRuntimeConfigs, runtimeConfigAnswer } from '../../src/interceptors/routing/runtime-config';
import { ProxyError } from '../../src/errors';
import type { NamedReply } from '../../src/interceptors/routing/backend-call';
import { encode, fail, ok } from '../support/fake-backends';

const driver = (cgroup_driver: string): NamedReply['reply'] => ok(encode('RuntimeConfigResponse', { linux: { cgroup_driver } }));
const named = (backend: string, reply: NamedReply['reply']): NamedReply => ({ backend, reply });

test('the same settings, however encoded (systemd is the default, so often left out): agreed, the first answer relayed', () => {
  const replies = [named('containerd', driver('SYSTEMD')), named('crio', ok(Buffer.alloc(0)))];
  const configs = compareRuntimeConfigs(replies);
  expect(configs.disagreement).toBeUndefined();
  expect(runtimeConfigAnswer(configs)).toEqual({ from: 'backend', ...replies[0] });
});

test('different cgroup drivers: FAILED_PRECONDITION naming each backend and its driver, whatever else failed', () => {
  const configs = compareRuntimeConfigs([
    named('containerd', driver('SYSTEMD')),
    named('crio', driver('CGROUPFS')),
    named('kata', fail(14, 'down')),
  ]);
  expect(configs.disagreement).toBe('backend "containerd": cgroup driver systemd; backend "crio": cgroup driver cgroupfs');
  expect(runtimeConfigAnswer(configs)).toMatchObject({ from: 'proxy', answer: { code: 9, body: undefined } });
});

test('backends without the method do not count; a backend that failed otherwise makes the answer fail', () => {
  const some = compareRuntimeConfigs([named('containerd', fail(12, 'unknown method')), named('crio', driver('CGROUPFS'))]);
  expect(runtimeConfigAnswer(some)).toEqual({ from: 'backend', backend: 'crio', reply: driver('CGROUPFS') });
  const none = compareRuntimeConfigs([named('containerd', fail(12, 'unknown method')), named('crio', fail(12, 'unknown method'))]);
  expect(runtimeConfigAnswer(none)).toMatchObject({ from: 'proxy', answer: { code: 12 } });
  const down = compareRuntimeConfigs([named('containerd', driver('SYSTEMD')), named('crio', fail(14, 'connect ENOENT'))]);
  expect(runtimeConfigAnswer(down)).toMatchObject({
    from: 'proxy',
    answer: { code: 14, message: 'cri-proxy: RuntimeConfig needs every backend; backend "crio" failed: UNAVAILABLE: connect ENOENT' },
  });
});

test('an answer that does not decode is the backend’s protocol error, naming it', () => {
  expect(() => compareRuntimeConfigs([named('crio', ok(Buffer.from([0x0a, 0x05])))])).toThrow(ProxyError);
  expect(() => compareRuntimeConfigs([named('crio', ok(Buffer.from([0x0a, 0x05])))])).toThrow(/backend "crio" sent a malformed/);
});
