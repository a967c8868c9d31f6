import { ProxyError } from '../../src/errors';
import { requestString, rewriteHandler } from '../../src/messages/request-fields';
import { imageStatusAcross, removeImageAcross } from '../../src/interceptors/routing/image-lookup';
import { toEveryBackend } from '../../src/interceptors/routing/node-wide';
import { decodeMessage } from '../../src/messages/codec';
import { lengthDelimited } from '../../src/messages/protobuf-wire';
import { encode, fail, fakeCall, ok, withUnknown, type Script } from '../support/fake-backends';

const BACKENDS = ['containerd', 'crio'];
const fanOut = (script: Script) => {
  const { call, calls } = fakeCall(script);
  return { c: { call, backends: BACKENDS, metadata: ['x-trace', 't'], deadline: 42 }, calls };
};

const present = (id: string) => ok(encode('ImageStatusResponse', { image: { id, repo_tags: ['busybox:1'] } }));
const absent = ok(encode('ImageStatusResponse', {}));
const imageRequest = encode('ImageStatusRequest', { image: { image: 'busybox:1' } });
const removeRequest = encode('RemoveImageRequest', { image: { image: 'busybox:1' } });

describe('ImageStatus without a handler', () => {
  test('the first backend that has the image answers, as it answered', async () => {
    const reply = present('sha256:b');
    const { c, calls } = fanOut({ containerd: { ImageStatus: absent }, crio: { ImageStatus: reply } });
    expect(await imageStatusAcross(c, imageRequest)).toEqual({ from: 'backend', backend: 'crio', reply });
    expect(calls.map((x) => [x.backend, x.request.equals(imageRequest), x.deadline])).toEqual([
      ['containerd', true, 42],
      ['crio', true, 42],
    ]);
  });

  test('on both: the default backend', async () => {
    const { c } = fanOut({ containerd: { ImageStatus: present('sha256:a') }, crio: { ImageStatus: present('sha256:b') } });
    expect(await imageStatusAcross(c, imageRequest)).toMatchObject({ from: 'backend', backend: 'containerd' });
  });

  test('on none: the default backend\'s "not present"', async () => {
    const { c } = fanOut({ containerd: { ImageStatus: absent }, crio: { ImageStatus: absent } });
    expect(await imageStatusAcross(c, imageRequest)).toEqual({ from: 'backend', backend: 'containerd', reply: absent });
  });

  test('found on one while another is down: still found', async () => {
    const { c } = fanOut({ containerd: { ImageStatus: present('sha256:a') } });
    expect(await imageStatusAcross(c, imageRequest)).toMatchObject({ from: 'backend', backend: 'containerd' });
  });

  test('not found, and a backend could not be asked: UNAVAILABLE naming it (it may have the image)', async () => {
    const { c } = fanOut({ containerd: { ImageStatus: absent } });
    const answer = await imageStatusAcross(c, imageRequest);
    expect(answer).toMatchObject({
      from: 'proxy',
      answer: { code: 14, message: expect.stringContaining('backend "crio" failed: UNAVAILABLE') as unknown },
    });
  });

  test('a malformed answer names the backend', async () => {
    const { c } = fanOut({ containerd: { ImageStatus: ok(Buffer.from([0x0a, 0x09])) }, crio: { ImageStatus: absent } });
    await expect(imageStatusAcross(c, imageRequest)).rejects.toThrow(/backend "containerd" sent a malformed ImageStatusResponse/);
  });
});

describe('RemoveImage without a handler', () => {
  test('removed from every backend that has it; the first of them answers', async () => {
    const removed = ok(encode('RemoveImageResponse', {}));
    const { c, calls } = fanOut({
      containerd: { ImageStatus: present('sha256:a'), RemoveImage: removed },
      crio: { ImageStatus: present('sha256:a'), RemoveImage: ok() },
    });
    expect(await removeImageAcross(c, removeRequest)).toEqual({ from: 'backend', backend: 'containerd', reply: removed });
    expect(calls.filter((x) => x.method === 'RemoveImage').map((x) => [x.backend, x.request.equals(removeRequest)])).toEqual([
      ['containerd', true],
      ['crio', true],
    ]);
    // The RemoveImage request doubles as the ImageStatus request: the same ImageSpec in field 1.
    expect(decodeMessage('runtime.v1.ImageStatusRequest', calls[0]?.request ?? Buffer.alloc(0))).toEqual({ image: { image: 'busybox:1' } });
  });

  test('only the backends that have it are asked to remove it', async () => {
    const { c, calls } = fanOut({ containerd: { ImageStatus: absent }, crio: { ImageStatus: present('sha256:b'), RemoveImage: ok() } });
    expect(await removeImageAcross(c, removeRequest)).toMatchObject({ from: 'backend', backend: 'crio' });
    expect(calls.filter((x) => x.method === 'RemoveImage').map((x) => x.backend)).toEqual(['crio']);
  });

  test('on none: the default backend answers', async () => {
    const { c, calls } = fanOut({ containerd: { ImageStatus: absent, RemoveImage: ok() }, crio: { ImageStatus: absent } });
    expect(await removeImageAcross(c, removeRequest)).toMatchObject({ from: 'backend', backend: 'containerd' });
    expect(calls.filter((x) => x.method === 'RemoveImage').map((x) => x.backend)).toEqual(['containerd']);
  });

  test('a backend that cannot be asked fails the call before anything is removed', async () => {
    const { c, calls } = fanOut({ containerd: { ImageStatus: present('sha256:a'), RemoveImage: ok() } });
    const answer = await removeImageAcross(c, removeRequest);
    expect(answer).toMatchObject({
      from: 'proxy',
      answer: { code: 14, message: expect.stringMatching(/^cri-proxy: RemoveImage needs every backend; backend "crio" failed/) as unknown },
    });
    expect(calls.filter((x) => x.method === 'RemoveImage')).toEqual([]);
  });

  test('a removal that fails on one backend fails the call naming it', async () => {
    const { c } = fanOut({
      containerd: { ImageStatus: present('sha256:a'), RemoveImage: ok() },
      crio: { ImageStatus: present('sha256:a'), RemoveImage: fail(9, 'image is in use by a container') },
    });
    expect(await removeImageAcross(c, removeRequest)).toMatchObject({
      from: 'proxy',
      answer: {
        code: 9,
        message: 'cri-proxy: RemoveImage needs every backend; backend "crio" failed: FAILED_PRECONDITION: image is in use by a container',
      },
    });
  });
});

describe('UpdateRuntimeConfig: every backend', () => {
  const path = '/runtime.v1.RuntimeService/UpdateRuntimeConfig';
  const request = encode('UpdateRuntimeConfigRequest', { runtime_config: { network_config: { pod_cidr: '10.0.0.0/24' } } });

  test("all accept: the default backend's answer", async () => {
    const reply = ok(encode('UpdateRuntimeConfigResponse', {}));
    const { c, calls } = fanOut({ containerd: { UpdateRuntimeConfig: reply }, crio: { UpdateRuntimeConfig: ok() } });
    expect(await toEveryBackend(c, 'UpdateRuntimeConfig', path, request)).toEqual({ from: 'backend', backend: 'containerd', reply });
    expect(calls.map((x) => [x.backend, x.request.equals(request)])).toEqual([
      ['containerd', true],
      ['crio', true],
    ]);
  });

  test('one refuses: the call fails naming it', async () => {
    const { c } = fanOut({ containerd: { UpdateRuntimeConfig: ok() } });
    expect(await toEveryBackend(c, 'UpdateRuntimeConfig', path, request)).toMatchObject({ from: 'proxy', answer: { code: 14 } });
  });
});

describe('handler rewrite', () => {
  const run = encode('RunPodSandboxRequest', { config: { metadata: { name: 'p' } }, runtime_handler: 'kata-fast' });

  test('renames the handler, keeping every other byte', () => {
    const seen: string[] = [];
    const out = rewriteHandler(run, 'runtime.v1.RunPodSandboxRequest', 'runtime_handler', (h) => {
      seen.push(h);
      return 'kata';
    });
    expect(seen).toEqual(['kata-fast']);
    expect(decodeMessage('runtime.v1.RunPodSandboxRequest', out)).toEqual({ config: { metadata: { name: 'p' } }, runtime_handler: 'kata' });
  });

  test('the same handler: the very same buffer', () => {
    expect(rewriteHandler(run, 'runtime.v1.RunPodSandboxRequest', 'runtime_handler', (h) => h)).toBe(run);
    const none = encode('RunPodSandboxRequest', {});
    expect(rewriteHandler(none, 'runtime.v1.RunPodSandboxRequest', 'runtime_handler', () => '')).toBe(none);
  });

  test('"" selects the backend\'s default handler: the field goes', () => {
    const out = rewriteHandler(run, 'runtime.v1.RunPodSandboxRequest', 'runtime_handler', () => '');
    expect(decodeMessage('runtime.v1.RunPodSandboxRequest', out)).toEqual({ config: { metadata: { name: 'p' } } });
  });

  test('nested handlers (an image spec) keep unknown fields', () => {
    const image = withUnknown(encode('ImageSpec', { image: 'busybox', runtime_handler: 'kata-fast' }), 'keep-me');
    const pull = lengthDelimited(1, image);
    const out = rewriteHandler(pull, 'runtime.v1.PullImageRequest', 'image.runtime_handler', () => 'kata');
    expect(out.toString()).toContain('keep-me');
    expect(decodeMessage('runtime.v1.PullImageRequest', out)).toEqual({ image: { image: 'busybox', runtime_handler: 'kata' } });
  });

  test('requestString reads a field without decoding the rest', () => {
    expect(requestString(run, 'runtime.v1.RunPodSandboxRequest', 'runtime_handler')).toBe('kata-fast');
    expect(requestString(run, 'runtime.v1.RunPodSandboxRequest', 'config.metadata.name')).toBe('p');
    expect(requestString(run, 'runtime.v1.RunPodSandboxRequest', 'config.metadata.uid')).toBe('');
  });

  test.each([
    ['rewriteHandler', () => rewriteHandler(Buffer.from([0x12, 0x09]), 'runtime.v1.RunPodSandboxRequest', 'runtime_handler', () => 'x')],
    ['requestString', () => requestString(Buffer.from([0x12, 0x09]), 'runtime.v1.RunPodSandboxRequest', 'runtime_handler')],
  ])('%s: a request that does not decode is INVALID_ARGUMENT', (_name, act) => {
    let error: unknown;
    try {
      act();
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ProxyError);
    expect((error as ProxyError).grpcStatus).toBe(3);
  });
});
