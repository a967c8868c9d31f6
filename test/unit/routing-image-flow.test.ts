import { Registry } from 'prom-client';
import { ImageFlow, type CreateCall, type PullOutcome } from '../../src/interceptors/routing/image-flow';
import { routingMetrics } from '../../src/interceptors/routing/metrics';
import { PullCredentials } from '../../src/interceptors/routing/pull-credentials';
import { silentLogger } from '../../src/log';
import { decodeMessage } from '../../src/messages/codec';
import { lengthDelimited } from '../../src/messages/protobuf-wire';
import { encode, fail, fakeCall, ok, withUnknown, type Script } from '../support/fake-backends';
import { sample } from '../support/metric-samples';

const ID = `sha256:${'a'.repeat(64)}`;
const OTHER_ID = `sha256:${'b'.repeat(64)}`;
const NAME = 'registry.example/app:1';
const present = (id: string, digests: string[] = []): ReturnType<typeof ok> =>
  ok(encode('ImageStatusResponse', { image: { id, repo_tags: [NAME], repo_digests: digests } }));
const absent = ok(encode('ImageStatusResponse', {}));
const imageAsked = (request: Buffer): string =>
  (decodeMessage('runtime.v1.ImageStatusRequest', request)['image'] as { image: string } | undefined)?.image ?? '';

/** ImageStatus answers of `backend` by the image asked for. */
const statusBy =
  (answers: Readonly<Record<string, ReturnType<typeof ok>>>) =>
  (request: Buffer): ReturnType<typeof ok> =>
    answers[imageAsked(request)] ?? absent;

const sandbox = withUnknown(encode('PodSandboxConfig', { metadata: { name: 'p', namespace: 'ns', uid: 'u' } }), 'kept');
const createRequest = (image: Record<string, unknown>): Buffer =>
  Buffer.concat([
    encode('CreateContainerRequest', { pod_sandbox_id: 's1', config: { metadata: { name: 'c' }, image } }),
    lengthDelimited(3, sandbox),
  ]);

function setup(script: Script, options: { pullOnCreate?: boolean; pull?: PullOutcome } = {}) {
  const registry = new Registry();
  const { call, calls } = fakeCall(script);
  const credentials = new PullCredentials(10);
  const flow = new ImageFlow({
    backends: ['containerd', 'crio'],
    call,
    pullOnCreate: options.pullOnCreate ?? true,
    credentials,
    metrics: routingMetrics(registry),
    log: silentLogger,
  });
  const pulls: { backend: string; request: Record<string, unknown>; bytes: Buffer }[] = [];
  const create = (request: Buffer): CreateCall => ({
    request,
    owner: 'crio',
    metadata: [],
    deadline: undefined,
    pull: (backend, bytes) => {
      pulls.push({ backend, request: decodeMessage('runtime.v1.PullImageRequest', bytes), bytes });
      return Promise.resolve(options.pull ?? { code: 0, message: '', refused: false, imageRef: ID });
    },
  });
  return { flow, calls, pulls, credentials, registry, create };
}

const imageOf = (request: Buffer): unknown =>
  (decodeMessage('runtime.v1.CreateContainerRequest', request)['config'] as { image: unknown }).image;

test('the owner has the image kubelet names: the request goes on as it is, nothing else asked', async () => {
  const { flow, calls, pulls, create } = setup({ crio: { ImageStatus: present(ID) } });
  const request = createRequest({ image: ID, user_specified_image: NAME });
  expect(await flow.beforeCreate(create(request))).toEqual({ kind: 'ready', request });
  expect(calls.map((c) => [c.backend, c.method])).toEqual([['crio', 'ImageStatus']]);
  expect(pulls).toEqual([]);
});

test('the owner cannot say (it fails ImageStatus): the request goes on, for the runtime to answer', async () => {
  const { flow, pulls, create } = setup({ crio: { ImageStatus: fail(14, 'down') } });
  const request = createRequest({ image: ID, user_specified_image: NAME });
  expect(await flow.beforeCreate(create(request))).toEqual({ kind: 'ready', request });
  expect(pulls).toEqual([]);
});

test('pulled for the pod: the spec kubelet sent (handler, annotations), its pod config as sent, the repository’s credentials', async () => {
  const { flow, pulls, credentials, create, registry } = setup({ crio: { ImageStatus: absent } });
  const auth = { username: 'robot', password: 'secret' };
  credentials.learn('registry.example/app:0', encode('PullImageRequest', { image: { image: 'registry.example/app:0' }, auth }));
  const spec = { image: ID, user_specified_image: NAME, runtime_handler: 'kata', annotations: { arch: 'arm64' } };
  const request = createRequest(spec);
  expect(await flow.beforeCreate(create(request))).toEqual({ kind: 'ready', request });
  expect(pulls).toHaveLength(1);
  expect(pulls[0]).toMatchObject({ backend: 'crio', request: { image: { ...spec, image: NAME }, auth } });
  // The pod's config went along as kubelet sent it, a field this schema does not know included.
  expect(pulls[0]?.bytes.includes(lengthDelimited(3, sandbox))).toBe(true);
  expect(await sample(registry, 'cri_proxy_routing_missing_images_total', { backend: 'crio', outcome: 'pulled' })).toBe(1);
});

test('pulled by name under another ID than kubelet named: the container is created from what was pulled', async () => {
  const { flow, create } = setup({ crio: { ImageStatus: absent } }, { pull: { code: 0, message: '', refused: false, imageRef: OTHER_ID } });
  const answer = await flow.beforeCreate(create(createRequest({ image: ID, user_specified_image: NAME })));
  expect(answer.kind === 'ready' ? imageOf(answer.request) : answer).toEqual({ image: OTHER_ID, user_specified_image: NAME });
});

test('a name kubelet gives (no ID) is pulled as it is, and the request left alone', async () => {
  const { flow, pulls, create } = setup(
    { crio: { ImageStatus: absent } },
    { pull: { code: 0, message: '', refused: false, imageRef: OTHER_ID } },
  );
  const request = createRequest({ image: NAME });
  expect(await flow.beforeCreate(create(request))).toEqual({ kind: 'ready', request });
  expect(pulls.map((p) => (p.request['image'] as { image: string }).image)).toEqual([NAME]);
});

test('an ID alone: pulled by the digest a backend holding it knows; none knows one: FAILED_PRECONDITION', async () => {
  const digest = `registry.example/app@sha256:${'d'.repeat(64)}`;
  const { flow, pulls, create } = setup({ crio: { ImageStatus: absent }, containerd: { ImageStatus: present(ID, [digest]) } });
  await flow.beforeCreate(create(createRequest({ image: ID })));
  expect(pulls.map((p) => (p.request['image'] as { image: string }).image)).toEqual([digest]);

  const none = setup({ crio: { ImageStatus: absent }, containerd: { ImageStatus: present(ID) } });
  expect(await none.flow.beforeCreate(none.create(createRequest({ image: ID })))).toEqual({
    kind: 'failed',
    answer: {
      code: 9,
      message: `cri-proxy: image ${ID} is not on backend "crio", which runs pod ns/p, and cannot be pulled there: kubelet named it only by ID, and no backend that has it knows a digest to pull it by`,
      body: undefined,
    },
  });
  expect(none.pulls).toEqual([]);
});

test('the owner holds the user’s image under its own ID: that one is used, nothing pulled', async () => {
  const { flow, pulls, create, registry } = setup({ crio: { ImageStatus: statusBy({ [NAME]: present(OTHER_ID) }) } });
  const answer = await flow.beforeCreate(create(createRequest({ image: ID, user_specified_image: NAME })));
  expect(answer.kind === 'ready' ? imageOf(answer.request) : answer).toEqual({ image: OTHER_ID, user_specified_image: NAME });
  expect(pulls).toEqual([]);
  expect(await sample(registry, 'cri_proxy_routing_missing_images_total', { backend: 'crio', outcome: 'local_id' })).toBe(1);
});

test('a pull refused or failed: the call fails with its status, naming image, runtime and pod', async () => {
  const refused = setup(
    { crio: { ImageStatus: absent } },
    { pull: { code: 7, message: 'image denied by rule "x"', refused: true, imageRef: undefined } },
  );
  expect(await refused.flow.beforeCreate(refused.create(createRequest({ image: ID, user_specified_image: NAME })))).toEqual({
    kind: 'failed',
    answer: {
      code: 7,
      message: `cri-proxy: image "${NAME}" is not on backend "crio", which runs pod ns/p; pulling it there failed: PERMISSION_DENIED: image denied by rule "x"`,
      body: undefined,
    },
  });
  expect(await sample(refused.registry, 'cri_proxy_routing_missing_images_total', { backend: 'crio', outcome: 'pull_denied' })).toBe(1);
});

test('a request whose config does not decode goes on, for the runtime to refuse', async () => {
  const { flow, calls, create } = setup({});
  const request = Buffer.concat([encode('CreateContainerRequest', { pod_sandbox_id: 's1' }), Buffer.from([0x12, 0x05, 0x01])]);
  expect(await flow.beforeCreate(create(request))).toEqual({ kind: 'ready', request });
  expect(calls).toEqual([]);
});

describe('image volumes', () => {
  const VOLUME = 'registry.example/data:2';
  const VOLUME_ID = `sha256:${'e'.repeat(64)}`;
  const withVolumes = (mounts: Record<string, unknown>[]): Buffer =>
    Buffer.concat([
      encode('CreateContainerRequest', {
        pod_sandbox_id: 's1',
        config: { metadata: { name: 'c' }, image: { image: ID, user_specified_image: NAME }, mounts },
      }),
      lengthDelimited(3, sandbox),
    ]);
  const mountsOf = (request: Buffer): unknown =>
    (decodeMessage('runtime.v1.CreateContainerRequest', request)['config'] as { mounts: unknown }).mounts;

  test('each image a volume mounts is made present too: pulled, or the owner’s own ID used in that mount only', async () => {
    const owner = statusBy({ [ID]: present(ID), [NAME]: present(ID), [VOLUME]: present(OTHER_ID) });
    const { flow, pulls, create } = setup(
      { crio: { ImageStatus: owner } },
      { pull: { code: 0, message: '', refused: false, imageRef: VOLUME_ID } },
    );
    const request = withVolumes([
      { container_path: '/host', host_path: '/srv' },
      { container_path: '/data', image: { image: VOLUME_ID, user_specified_image: VOLUME } },
      { container_path: '/tools', image: { image: 'registry.example/tools:3' } },
    ]);
    const answer = await flow.beforeCreate(create(request));
    if (answer.kind !== 'ready') throw new Error(answer.answer.message);
    expect(mountsOf(answer.request)).toEqual([
      { container_path: '/host', host_path: '/srv' },
      { container_path: '/data', image: { image: OTHER_ID, user_specified_image: VOLUME } },
      { container_path: '/tools', image: { image: 'registry.example/tools:3' } },
    ]);
    // Only the image the owner lacked under any name was pulled; the container's own image was there.
    expect(pulls.map((p) => (p.request['image'] as { image: string }).image)).toEqual(['registry.example/tools:3']);
    expect(imageOf(answer.request)).toEqual({ image: ID, user_specified_image: NAME });
  });

  test('a volume image that cannot be had fails the call, as the container image would', async () => {
    const { flow, create } = setup(
      { crio: { ImageStatus: statusBy({ [ID]: present(ID) }) } },
      { pull: { code: 14, message: 'no route to host', refused: false, imageRef: undefined } },
    );
    const answer = await flow.beforeCreate(create(withVolumes([{ container_path: '/data', image: { image: VOLUME } }])));
    expect(answer).toMatchObject({
      kind: 'failed',
      answer: { code: 14, message: expect.stringContaining(`image "${VOLUME}"`) as unknown },
    });
  });
});
