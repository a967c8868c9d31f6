import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { createImagePolicyInterceptor, imagePolicySchema } from '../../src/interceptors/image-policy';
import { policyDecisionKey } from '../../src/policies/decision-key';
import { decodeMessage, encodeMessage } from '../../src/messages/codec';
import type { Interceptor } from '../../src/chain/types';
import { startTestProxy, type RawClient, type TestProxy, depsForTestProxy } from '../support/proxy-harness';

const PULL = '/runtime.v1.ImageService/PullImage';
const CREATE = '/runtime.v1.RuntimeService/CreateContainer';
const RESTORE = '/runtime.v1.RuntimeService/RestorePod';
const ID = `sha256:${'5e'.repeat(32)}`;
const DIGEST = `sha256:${'d1'.repeat(32)}`;

const rules = [
  { name: 'no-latest', match: { images: ['docker.io/library/*'] }, action: 'allow', constraints: { denyLatest: true } },
  { name: 'team-a', match: { images: ['registry.corp.example/team-a/**'] }, namespaces: ['team-a'], action: 'allow' },
];

function pull(image: string, namespace?: string): Buffer {
  const sandbox = namespace === undefined ? {} : { sandbox_config: { metadata: { name: 'p', namespace } } };
  return encodeMessage('runtime.v1.PullImageRequest', { image: { image }, ...sandbox });
}

/** A mount of an image (an image volume). */
function volume(containerPath: string, image: string): Record<string, unknown> {
  return { container_path: containerPath, image: { image }, readonly: true };
}

const HOST_MOUNT = { container_path: '/host', host_path: '/var/lib/x' };

function create(image: string, userSpecified?: string, namespace = 'default', volumes: Record<string, unknown>[] = []): Buffer {
  const spec = userSpecified === undefined ? { image } : { image, user_specified_image: userSpecified };
  const mounts = volumes.length === 0 ? {} : { mounts: [HOST_MOUNT, ...volumes] };
  return encodeMessage('runtime.v1.CreateContainerRequest', {
    pod_sandbox_id: 'sb1',
    config: { metadata: { name: 'c' }, image: spec, ...mounts },
    sandbox_config: { metadata: { name: 'p', namespace } },
  });
}

interface Restored {
  readonly name: string;
  readonly image: string;
  readonly volumes?: Record<string, unknown>[];
}

function restore(containers: readonly Restored[], namespace = 'default'): Buffer {
  return encodeMessage('runtime.v1.RestorePodRequest', {
    checkpoint_path: '/var/lib/checkpoints/p',
    config: { metadata: { name: 'p', namespace, uid: 'u1' } },
    container_configs: containers.map((c) => ({
      metadata: { name: c.name },
      image: { image: c.image },
      ...(c.volumes === undefined ? {} : { mounts: [HOST_MOUNT, ...c.volumes] }),
    })),
  });
}

function imageStatus(tags: string[], digests: string[] = []): Buffer {
  return encodeMessage('runtime.v1.ImageStatusResponse', { image: { id: ID, repo_tags: tags, repo_digests: digests } });
}

async function counted(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = await registry.getSingleMetric(name)?.get();
  const sample = metric?.values.find((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val));
  return sample?.value ?? 0;
}

describe('image-policy interceptor', () => {
  let proxy: TestProxy;
  let client: RawClient;
  let registry: Registry;
  let decisions: unknown[];

  async function start(config: Record<string, unknown>): Promise<void> {
    registry = new Registry();
    const { deps, bind } = depsForTestProxy('images', registry);
    const interceptor = createImagePolicyInterceptor(imagePolicySchema.parse(config), deps);
    // Stands where an audit interceptor would: before the policy, reading its decision afterwards.
    decisions = [];
    const recorder: Interceptor = {
      name: 'recorder',
      intercept: async (ctx, next) => {
        try {
          await next();
        } finally {
          decisions.push(ctx.state.get(policyDecisionKey));
        }
      },
    };
    proxy = await startTestProxy({
      entries: [
        { interceptor: recorder, onError: 'failClosed', methods: undefined },
        { interceptor, onError: 'failClosed', methods: undefined },
      ],
    });
    bind(proxy);
    client = proxy.client();
  }

  afterEach(async () => {
    await proxy.close();
  });

  const runtimeSaw = (name: string): number => proxy.runtime.calls.filter((c) => c.name === name).length;

  test('a denied pull fails with PERMISSION_DENIED naming the rule, and never reaches the runtime', async () => {
    await start({ rules });
    const result = await client.unary(PULL, pull('busybox', 'default'));
    expect(result.status.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(result.status.details).toBe(
      'image "docker.io/library/busybox:latest" denied by rule "no-latest" ' +
        '(cri-proxy inline image policy of interceptor "images"): tag latest (implied by giving no tag) is not allowed',
    );
    expect(runtimeSaw('PullImage')).toBe(0);
    expect(await counted(registry, 'cri_proxy_image_policy_decisions_total', { door: 'pull', action: 'deny', mode: 'enforce' })).toBe(1);
  });

  test('an allowed pull is forwarded untouched', async () => {
    await start({ rules });
    const request = pull('busybox:1.36', 'default');
    const result = await client.unary(PULL, request);
    expect(result.status.code).toBe(grpc.status.OK);
    expect(proxy.runtime.lastCall('PullImage')?.requestBytes.equals(request)).toBe(true);
    expect(await counted(registry, 'cri_proxy_image_policy_decisions_total', { door: 'pull', action: 'allow', mode: 'enforce' })).toBe(1);
  });

  test('the namespace comes from the sandbox config; without one only unscoped rules apply', async () => {
    await start({ rules });
    expect((await client.unary(PULL, pull('registry.corp.example/team-a/app:1', 'team-a'))).status.code).toBe(grpc.status.OK);
    expect((await client.unary(PULL, pull('registry.corp.example/team-a/app:1', 'team-b'))).status.code).toBe(
      grpc.status.PERMISSION_DENIED,
    );
    const bare = await client.unary(PULL, pull('registry.corp.example/team-a/app:1'));
    expect(bare.status.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(bare.status.details).toMatch(/denied by the default action .*: no rule matches$/);
  });

  test('a malformed reference is denied with the reason', async () => {
    await start({ rules, defaultAction: 'allow' });
    const result = await client.unary(PULL, pull('Busybox', 'default'));
    expect(result.status.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(result.status.details).toMatch(
      /^image "Busybox" denied .*malformed image reference: repository name "library\/Busybox" must be lowercase$/,
    );
  });

  test('CreateContainer is decided on the image the user specified, without asking the runtime', async () => {
    await start({ rules });
    const denied = await client.unary(CREATE, create(ID, 'busybox:latest'));
    expect(denied.status.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(denied.status.details).toMatch(/^image "docker.io\/library\/busybox:latest" denied by rule "no-latest"/);
    expect((await client.unary(CREATE, create(ID, 'busybox:1.36'))).status.code).toBe(grpc.status.OK);
    expect(runtimeSaw('ImageStatus')).toBe(0);
    expect(runtimeSaw('CreateContainer')).toBe(1);
    expect(await counted(registry, 'cri_proxy_image_policy_decisions_total', { door: 'create', action: 'deny' })).toBe(1);
  });

  test('an image ID is resolved through ImageStatus and denied by its names', async () => {
    await start({ rules });
    proxy.runtime.on('ImageStatus', { respond: imageStatus(['docker.io/library/busybox:latest']) });
    const result = await client.unary(CREATE, create(ID));
    expect(result.status.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(result.status.details).toMatch(new RegExp(`^image "${ID}" \\(docker.io/library/busybox:latest\\) denied by rule "no-latest"`));
    expect(runtimeSaw('CreateContainer')).toBe(0);
  });

  test('an image ID with one allowed name is allowed, and its names are cached', async () => {
    await start({ rules });
    proxy.runtime.on('ImageStatus', {
      respond: imageStatus(['docker.io/library/busybox:latest'], [`docker.io/library/busybox@${DIGEST}`]),
    });
    expect((await client.unary(CREATE, create(ID))).status.code).toBe(grpc.status.OK);
    expect((await client.unary(CREATE, create(ID))).status.code).toBe(grpc.status.OK);
    expect(runtimeSaw('ImageStatus')).toBe(1);
    expect(runtimeSaw('CreateContainer')).toBe(2);
  });

  test('an image without names, or unknown to the runtime, is undecidable and denied', async () => {
    await start({ rules, defaultAction: 'allow' });
    proxy.runtime.on('ImageStatus', { respond: imageStatus([]) });
    const nameless = await client.unary(CREATE, create(ID));
    expect(nameless.status.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(nameless.status.details).toMatch(/the runtime knows no name for it/);
    proxy.runtime.on('ImageStatus', { respond: Buffer.alloc(0) });
    expect((await client.unary(CREATE, create(ID))).status.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(runtimeSaw('CreateContainer')).toBe(0);
  });

  test('a failed ImageStatus lookup denies the call', async () => {
    await start({ rules });
    proxy.runtime.on('ImageStatus', { fail: { code: grpc.status.UNAVAILABLE, message: 'runtime busy' } });
    const result = await client.unary(CREATE, create(ID));
    expect(result.status.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(result.status.details).toMatch(/cannot be checked .*: ImageStatus failed: status 14: runtime busy$/);
    expect(runtimeSaw('CreateContainer')).toBe(0);
    expect(await counted(registry, 'cri_proxy_image_policy_lookup_failures_total')).toBe(1);
  });

  test('a lookup that takes too long denies the call once imageStatusTimeoutMs passes', async () => {
    await start({ rules, imageStatusTimeoutMs: 100 });
    proxy.runtime.on('ImageStatus', { delayMs: 2000, respond: imageStatus(['docker.io/library/busybox:1']) });
    const result = await client.unary(CREATE, create(ID));
    expect(result.status.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(result.status.details).toMatch(/took longer than 100 ms/);
  });

  test('with whenLookupFails: allow, a failed lookup lets the call through', async () => {
    await start({ rules, whenLookupFails: 'allow' });
    proxy.runtime.on('ImageStatus', { fail: { code: grpc.status.INTERNAL, message: 'boom' } });
    expect((await client.unary(CREATE, create(ID))).status.code).toBe(grpc.status.OK);
    expect(runtimeSaw('CreateContainer')).toBe(1);
    expect(await counted(registry, 'cri_proxy_image_policy_decisions_total', { door: 'create', action: 'allow' })).toBe(1);
  });

  test('audit mode lets denied images through and counts them', async () => {
    await start({ rules, mode: 'audit' });
    expect((await client.unary(PULL, pull('busybox', 'default'))).status.code).toBe(grpc.status.OK);
    expect((await client.unary(CREATE, create(ID, 'quay.io/evil/x:1'))).status.code).toBe(grpc.status.OK);
    expect(runtimeSaw('PullImage')).toBe(1);
    expect(runtimeSaw('CreateContainer')).toBe(1);
    expect(await counted(registry, 'cri_proxy_image_policy_decisions_total', { door: 'pull', action: 'deny', mode: 'audit' })).toBe(1);
    expect(await counted(registry, 'cri_proxy_image_policy_decisions_total', { door: 'create', action: 'deny', mode: 'audit' })).toBe(1);
  });

  test('the decision is left on the call for interceptors earlier in the chain', async () => {
    await start({ rules, mode: 'audit' });
    await client.unary(PULL, pull('busybox', 'default'));
    await client.unary(PULL, pull('busybox:1', 'default'));
    await client.unary('/runtime.v1.ImageService/ListImages', Buffer.alloc(0));
    expect(decisions).toEqual([
      { action: 'deny', rule: 'no-latest', reason: 'tag latest (implied by giving no tag) is not allowed', mode: 'audit' },
      { action: 'allow', rule: 'no-latest', reason: 'matches "docker.io/library/*"', mode: 'audit' },
      undefined,
    ]);
  });

  test('image volumes: a mount naming a denied image by ID is refused, though the container image is allowed', async () => {
    await start({ rules });
    proxy.runtime.on('ImageStatus', { respond: imageStatus(['quay.io/evil/tools:1']) });
    const result = await client.unary(CREATE, create('busybox:1.36', undefined, 'default', [volume('/tools', ID)]));
    expect(result.status.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(result.status.details).toBe(
      `image volume "${ID}" (quay.io/evil/tools:1) at config.mounts[1].image denied by the default action ` +
        '(cri-proxy inline image policy of interceptor "images"): no rule matches',
    );
    expect(runtimeSaw('CreateContainer')).toBe(0);
    const lookup = proxy.runtime.lastCall('ImageStatus')?.requestBytes ?? Buffer.alloc(0);
    expect(decodeMessage('runtime.v1.ImageStatusRequest', lookup)).toMatchObject({ image: { image: ID } });
    // One decision per image: the container's allowed, the volume's denied.
    expect(await counted(registry, 'cri_proxy_image_policy_decisions_total', { door: 'create', action: 'allow' })).toBe(1);
    expect(await counted(registry, 'cri_proxy_image_policy_decisions_total', { door: 'create', action: 'deny' })).toBe(1);
    expect(decisions).toEqual([
      {
        action: 'deny',
        rule: undefined,
        reason: 'no rule matches',
        mode: 'enforce',
        images: [
          { image: 'busybox:1.36', at: 'config.image', action: 'allow', rule: 'no-latest', reason: 'matches "docker.io/library/*"' },
          { image: ID, at: 'config.mounts[1].image', action: 'deny', rule: undefined, reason: 'no rule matches' },
        ],
      },
    ]);
  });

  test('image volumes: a call whose every image is allowed is forwarded untouched; a denied container image still denies', async () => {
    await start({ rules });
    const allowed = create('busybox:1.36', undefined, 'default', [volume('/data', 'busybox:1.37')]);
    expect((await client.unary(CREATE, allowed)).status.code).toBe(grpc.status.OK);
    expect(proxy.runtime.lastCall('CreateContainer')?.requestBytes.equals(allowed)).toBe(true);
    const denied = await client.unary(CREATE, create('busybox', undefined, 'default', [volume('/data', 'busybox:1.37')]));
    expect(denied.status.details).toMatch(/^image "docker.io\/library\/busybox:latest" denied by rule "no-latest"/);
    expect(runtimeSaw('CreateContainer')).toBe(1);
  });

  test('RestorePod: each container image and image volume is checked, and the denial says where', async () => {
    await start({ rules });
    const ok = restore([
      { name: 'a', image: 'busybox:1.36' },
      { name: 'b', image: 'busybox:1.37', volumes: [volume('/v', 'busybox:1.36')] },
    ]);
    expect((await client.unary(RESTORE, ok)).status.code).toBe(grpc.status.OK);
    expect(proxy.runtime.lastCall('RestorePod')?.requestBytes.equals(ok)).toBe(true);
    const badImage = await client.unary(
      RESTORE,
      restore([
        { name: 'a', image: 'busybox:1.36' },
        { name: 'b', image: 'quay.io/x/y:1' },
      ]),
    );
    expect(badImage.status.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(badImage.status.details).toMatch(/^image "quay.io\/x\/y:1" at container_configs\[1\].image denied by the default action/);
    const badVolume = await client.unary(RESTORE, restore([{ name: 'a', image: 'busybox:1.36', volumes: [volume('/v', 'busybox')] }]));
    expect(badVolume.status.details).toMatch(
      /^image volume "docker.io\/library\/busybox:latest" at container_configs\[0\].mounts\[1\].image denied by rule "no-latest"/,
    );
    expect(runtimeSaw('RestorePod')).toBe(1);
    expect(await counted(registry, 'cri_proxy_image_policy_decisions_total', { door: 'restore', action: 'deny' })).toBe(2);
  });

  test('RestorePod: the namespace is the restored pod’s, and a restore naming no container cannot be decided', async () => {
    await start({ rules });
    const teamA = [{ name: 'a', image: 'registry.corp.example/team-a/app:1' }];
    expect((await client.unary(RESTORE, restore(teamA, 'team-a'))).status.code).toBe(grpc.status.OK);
    expect((await client.unary(RESTORE, restore(teamA, 'team-b'))).status.code).toBe(grpc.status.PERMISSION_DENIED);
    const empty = await client.unary(RESTORE, restore([]));
    expect(empty.status.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(empty.status.details).toBe('RestorePod names no image to check (cri-proxy inline image policy of interceptor "images")');
    expect(runtimeSaw('RestorePod')).toBe(1);
  });

  test('other methods pass without their requests being decoded', async () => {
    await start({ rules });
    const junk = Buffer.from([0xff, 0xff, 0xff]);
    expect((await client.unary('/runtime.v1.ImageService/ListImages', junk)).status.code).toBe(grpc.status.OK);
    expect((await client.unary('/runtime.v1.ImageService/RemoveImage', junk)).status.code).toBe(grpc.status.OK);
  });
});
