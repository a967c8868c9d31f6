/**
 * kubelet's own image flow (EnsureImageExists, then CreateContainer and StartContainer) through routing, in front
 * of two fake runtimes, for every pull policy and wherever the image is: the container starts on its pod's runtime.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { auditConfigSchema, createAuditInterceptor } from '../../src/interceptors/audit';
import { createImagePolicyInterceptor, imagePolicySchema } from '../../src/interceptors/image-policy';
import { silentLogger } from '../../src/log';
import { decodeMessage } from '../../src/messages/codec';
import type { Router } from '../../src/proxy/router';
import type { ChainEntry } from '../../src/chain/chain';
import type { Interceptor } from '../../src/chain/types';
import { sample } from '../support/metric-samples';
import { makeTempDir, RawClient } from '../support/proxy-harness';
import { callVia, methodsCalled, ok, sandboxConfig, startRoutingProxy, type Backend, type RoutingProxy } from '../support/routing-proxy';

jest.setTimeout(30_000);

type Policy = 'IfNotPresent' | 'Always' | 'Never';
type Where = 'pod' | 'other' | 'none' | 'all';

const IMAGE = 'registry.example/app:1';
/** The rules route namespace "sandboxed" to crio; any other to containerd (the default). */
const NAMESPACE: Record<Backend, string> = { containerd: 'web', crio: 'sandboxed' };
const other = (backend: Backend): Backend => (backend === 'containerd' ? 'crio' : 'containerd');

let routing: RoutingProxy;
afterEach(async () => {
  await routing.close();
});

const entry = (interceptor: Interceptor): ChainEntry => ({ interceptor, onError: 'failClosed', methods: undefined });

/** Pulls `image` on a runtime's own socket, around the proxy: how an image comes to be on one runtime only. */
async function pullDirectly(backend: Backend, image: string): Promise<string> {
  const direct = new RawClient(routing.runtime[backend].target);
  try {
    return ok(await callVia(direct, 'PullImage', { image: { image } }))['image_ref'] as string;
  } finally {
    direct.close();
  }
}

interface Started {
  /** kubelet gave up before CreateContainer: the error it reports. */
  readonly kubeletError?: 'ErrImageNeverPull';
  readonly code: grpc.status;
  readonly details: string;
  readonly containerId?: string;
}

/**
 * kubelet's calls for a new pod with one container, in order: RunPodSandbox; ImageStatus with no pod and no
 * handler; PullImage (with the pod's config) only when the policy says so; CreateContainer naming the image by the
 * ID it was told and the user's name for it; StartContainer.
 */
async function kubeletStartsPod(namespace: string, policy: Policy, auth?: Record<string, string>): Promise<Started> {
  const config = sandboxConfig('p', namespace);
  const podId = ok(await routing.call('RunPodSandbox', { config }))['pod_sandbox_id'] as string;
  const status = ok(await routing.call('ImageStatus', { image: { image: IMAGE } }));
  let imageRef = (status['image'] as { id?: string } | undefined)?.id;
  if (policy === 'Always' || (policy === 'IfNotPresent' && imageRef === undefined)) {
    const pulled = ok(await routing.call('PullImage', { image: { image: IMAGE }, sandbox_config: config, ...(auth ? { auth } : {}) }));
    imageRef = pulled['image_ref'] as string;
  }
  if (imageRef === undefined) return { kubeletError: 'ErrImageNeverPull', code: grpc.status.OK, details: '' };
  const created = await routing.call('CreateContainer', {
    pod_sandbox_id: podId,
    sandbox_config: config,
    config: { metadata: { name: 'main' }, image: { image: imageRef, user_specified_image: IMAGE } },
  });
  if (created.code !== grpc.status.OK) return { code: created.code, details: created.details };
  const containerId = created.response?.['container_id'] as string;
  ok(await routing.call('StartContainer', { container_id: containerId }));
  return { code: grpc.status.OK, details: '', containerId };
}

async function placeImage(where: Where, podBackend: Backend): Promise<void> {
  const on: Backend[] = { pod: [podBackend], other: [other(podBackend)], none: [], all: [podBackend, other(podBackend)] }[where];
  for (const backend of on) await pullDirectly(backend, IMAGE);
}

/** PullImage calls each runtime got through the proxy (the ones on its own socket are not counted). */
const pullsThroughProxy = (backend: Backend, direct: number): number =>
  methodsCalled(routing.runtime[backend]).filter((m) => m === 'PullImage').length - direct;

const policies: readonly Policy[] = ['IfNotPresent', 'Always', 'Never'];
const places: readonly Where[] = ['pod', 'other', 'none', 'all'];
const backends: readonly Backend[] = ['containerd', 'crio'];
const table = policies.flatMap((policy) => places.flatMap((where) => backends.map((backend) => [policy, where, backend] as const)));

describe("kubelet's image flow, for each pull policy and wherever the image is", () => {
  test.each(table)('%s, image on %s runtime, pod on %s', async (policy, where, podBackend) => {
    routing = await startRoutingProxy();
    await placeImage(where, podBackend);
    const direct = { containerd: pullsThroughProxy('containerd', 0), crio: pullsThroughProxy('crio', 0) };
    const started = await kubeletStartsPod(NAMESPACE[podBackend], policy);

    if (policy === 'Never' && where === 'none') {
      // As with a single runtime: no runtime has it, nothing may be pulled, kubelet reports it.
      expect(started.kubeletError).toBe('ErrImageNeverPull');
      expect([pullsThroughProxy('containerd', direct.containerd), pullsThroughProxy('crio', direct.crio)]).toEqual([0, 0]);
      return;
    }
    expect([started.code, started.details]).toEqual([grpc.status.OK, '']);
    const containerId = started.containerId ?? '';
    expect(routing.cri[podBackend].containers.get(containerId)?.state).toBe('CONTAINER_RUNNING');
    expect(routing.cri[other(podBackend)].containers.size).toBe(0);
    // Pulled on the pod's runtime when kubelet pulls, or when only the other runtime had it (routing, for kubelet).
    const kubeletPulls = policy === 'Always' || (policy === 'IfNotPresent' && where === 'none');
    const routingPulls = !kubeletPulls && where === 'other';
    expect([pullsThroughProxy(podBackend, direct[podBackend]), pullsThroughProxy(other(podBackend), direct[other(podBackend)])]).toEqual([
      kubeletPulls || routingPulls ? 1 : 0,
      0,
    ]);
    const pulledForKubelet = await sample(routing.registry(), 'cri_proxy_routing_missing_images_total', {
      backend: podBackend,
      outcome: 'pulled',
    });
    expect(pulledForKubelet).toBe(routingPulls ? 1 : undefined);
  });

  test.each(['IfNotPresent', 'Never'] as const)(
    '%s, registry unreachable, the image on the pod’s runtime (and on the other): started, no registry asked',
    async (policy) => {
      for (const where of ['pod', 'all'] as const) {
        for (const podBackend of backends) {
          routing = await startRoutingProxy();
          await placeImage(where, podBackend);
          for (const backend of backends) routing.cri[backend].registryDown = true;
          const direct = { containerd: pullsThroughProxy('containerd', 0), crio: pullsThroughProxy('crio', 0) };
          const started = await kubeletStartsPod(NAMESPACE[podBackend], policy);
          expect([where, podBackend, started.code, started.details]).toEqual([where, podBackend, grpc.status.OK, '']);
          expect(routing.cri[podBackend].containers.get(started.containerId ?? '')?.state).toBe('CONTAINER_RUNNING');
          for (const backend of backends) expect(pullsThroughProxy(backend, direct[backend])).toBe(0);
          await routing.close();
        }
      }
      routing = await startRoutingProxy();
    },
  );

  test('the registry unreachable and the image on the other runtime only: CreateContainer fails naming both, then works', async () => {
    routing = await startRoutingProxy();
    await placeImage('other', 'crio');
    routing.cri.crio.registryDown = true;
    const failed = await kubeletStartsPod(NAMESPACE.crio, 'IfNotPresent');
    expect([failed.code, failed.details]).toEqual([
      grpc.status.UNAVAILABLE,
      `cri-proxy: image "${IMAGE}" is not on backend "crio", which runs pod sandboxed/p; pulling it there failed: ` +
        `UNAVAILABLE: ${IMAGE}: no route to host`,
    ]);
    expect(await sample(routing.registry(), 'cri_proxy_routing_missing_images_total', { backend: 'crio', outcome: 'pull_failed' })).toBe(1);
    expect(routing.cri.crio.containers.size).toBe(0);
    // Once the registry answers, kubelet's next try starts the container.
    routing.cri.crio.registryDown = false;
    const started = await kubeletStartsPod(NAMESPACE.crio, 'IfNotPresent');
    expect(started.code).toBe(grpc.status.OK);
    expect(routing.cri.crio.containers.get(started.containerId ?? '')?.state).toBe('CONTAINER_RUNNING');
  });
});

describe('image volumes', () => {
  test('an image volume only the other runtime has is pulled onto the pod’s runtime too, and the container starts', async () => {
    routing = await startRoutingProxy();
    const VOLUME = 'registry.example/data:2';
    await placeImage('pod', 'crio');
    const volumeId = await pullDirectly('containerd', VOLUME);
    const config = sandboxConfig('p', NAMESPACE.crio);
    const podId = ok(await routing.call('RunPodSandbox', { config }))['pod_sandbox_id'] as string;
    // kubelet resolves every image of the pod (the container's, its image volumes') with ImageStatus first.
    const imageId = (ok(await routing.call('ImageStatus', { image: { image: IMAGE } }))['image'] as { id: string }).id;
    const volume = (ok(await routing.call('ImageStatus', { image: { image: VOLUME } }))['image'] as { id: string }).id;
    expect(volume).toBe(volumeId);
    const created = ok(
      await routing.call('CreateContainer', {
        pod_sandbox_id: podId,
        sandbox_config: config,
        config: {
          metadata: { name: 'main' },
          image: { image: imageId, user_specified_image: IMAGE },
          mounts: [{ container_path: '/data', image: { image: volume, user_specified_image: VOLUME } }],
        },
      }),
    );
    ok(await routing.call('StartContainer', { container_id: created['container_id'] }));
    expect(routing.cri.crio.imageId(VOLUME)).toBe(volumeId);
    expect(await sample(routing.registry(), 'cri_proxy_routing_missing_images_total', { backend: 'crio', outcome: 'pulled' })).toBe(1);
  });
});

describe('images kubelet names by ID', () => {
  test('the pod’s runtime has the image under an ID of its own: the container is created from that one, nothing pulled', async () => {
    routing = await startRoutingProxy();
    const onDefault = await pullDirectly('containerd', IMAGE);
    // The same name, pulled on crio at another time: other content, another ID.
    const crioId = `sha256:${'c'.repeat(64)}`;
    routing.cri.crio.images.set(crioId, [IMAGE]);
    const started = await kubeletStartsPod(NAMESPACE.crio, 'IfNotPresent');
    expect(started.code).toBe(grpc.status.OK);
    const created = routing.runtime.crio.lastCall('CreateContainer');
    const image = decodeMessage('runtime.v1.CreateContainerRequest', created?.requestBytes ?? Buffer.alloc(0))['config'] as {
      image: Record<string, string>;
    };
    // kubelet was told containerd's ID; crio got its own, the rest of the request as kubelet sent it.
    expect(onDefault).not.toBe(crioId);
    expect(image.image).toEqual({ image: crioId, user_specified_image: IMAGE });
    expect(routing.runtime.crio.lastCall('PullImage')).toBeUndefined();
    expect(await sample(routing.registry(), 'cri_proxy_routing_missing_images_total', { backend: 'crio', outcome: 'local_id' })).toBe(1);
  });

  test('an ID without the user’s name for it (older kubelets): pulled by a digest the other runtime knows, the same ID', async () => {
    routing = await startRoutingProxy();
    const id = await pullDirectly('containerd', IMAGE);
    const config = sandboxConfig('p', NAMESPACE.crio);
    const podId = ok(await routing.call('RunPodSandbox', { config }))['pod_sandbox_id'] as string;
    const created = ok(
      await routing.call('CreateContainer', {
        pod_sandbox_id: podId,
        sandbox_config: config,
        config: { metadata: { name: 'c' }, image: { image: id } },
      }),
    );
    expect(routing.cri.crio.containers.has(created['container_id'] as string)).toBe(true);
    const pull = decodeMessage('runtime.v1.PullImageRequest', routing.runtime.crio.lastCall('PullImage')?.requestBytes ?? Buffer.alloc(0));
    expect((pull['image'] as { image: string }).image).toBe(`registry.example/app@${id}`);
    expect(routing.cri.crio.imageId(id)).toBe(id);
  });

  test('pulling for kubelet turned off: FAILED_PRECONDITION naming the image, the runtime and the pod', async () => {
    routing = await startRoutingProxy({
      config: {
        rules: [{ backend: 'crio', match: { namespaces: ['sandboxed'] } }],
        images: { pullOnCreate: false },
      },
    });
    await placeImage('other', 'crio');
    const failed = await kubeletStartsPod(NAMESPACE.crio, 'IfNotPresent');
    expect([failed.code, failed.details]).toEqual([
      grpc.status.FAILED_PRECONDITION,
      `cri-proxy: image "${IMAGE}" is not on backend "crio", which runs pod sandboxed/p, and pulling it there for kubelet is turned off (images.pullOnCreate)`,
    ]);
    expect(routing.runtime.crio.lastCall('PullImage')).toBeUndefined();
    expect(await sample(routing.registry(), 'cri_proxy_routing_missing_images_total', { backend: 'crio', outcome: 'not_pulled' })).toBe(1);
  });
});

describe('the pulls routing makes for kubelet', () => {
  const policy = {
    defaultAction: 'deny',
    rules: [{ name: 'web-only', match: { images: ['registry.example/**'] }, namespaces: ['web'], action: 'allow' }],
  };
  const depsOf = (name: string, router: Router) => ({ name, log: silentLogger, registry: new Registry(), router });

  test('pass the image policy after routing, judged for the pod being created; the audit log records them', async () => {
    const dir = makeTempDir();
    const auditPath = join(dir, 'audit.log');
    routing = await startRoutingProxy({
      before: (router) => [entry(createAuditInterceptor(auditConfigSchema.parse({ path: auditPath }), depsOf('audit', router)))],
      after: (router) => [entry(createImagePolicyInterceptor(imagePolicySchema.parse(policy), depsOf('images', router)))],
    });
    await placeImage('other', 'crio');
    // kubelet's pod in "sandboxed" (on crio) may not use it: the pull routing would make for it is refused.
    const denied = await kubeletStartsPod(NAMESPACE.crio, 'IfNotPresent');
    expect(denied.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(denied.details).toMatch(
      new RegExp(
        `^cri-proxy: image "${IMAGE}" is not on backend "crio", which runs pod sandboxed/p; pulling it there failed: PERMISSION_DENIED: image "registry.example/app:1" denied by the default action`,
      ),
    );
    expect(routing.runtime.crio.lastCall('PullImage')).toBeUndefined();
    expect(await sample(routing.registry(), 'cri_proxy_routing_missing_images_total', { backend: 'crio', outcome: 'pull_denied' })).toBe(1);

    const records = readFileSync(auditPath, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    // The pull routing made, then the CreateContainer it was made for: both denied, both on the record.
    expect(records.map((r) => [r['method'], r['onBehalfOf'], r['madeBy'], (r['outcome'] as { status: string }).status])).toEqual([
      ['RunPodSandbox', undefined, undefined, 'OK'],
      ['PullImage', 'CreateContainer', 'routing', 'PERMISSION_DENIED'],
      ['CreateContainer', undefined, undefined, 'PERMISSION_DENIED'],
    ]);
    expect(records[1]).toMatchObject({
      image: IMAGE,
      backend: 'crio',
      pod: { namespace: 'sandboxed', name: 'p' },
      policy: { action: 'deny', mode: 'enforce' },
    });
    rmSync(dir, { recursive: true, force: true });
  });

  test('an audit log after routing sees them in the chain, and records each once', async () => {
    const dir = makeTempDir();
    const auditPath = join(dir, 'audit.log');
    routing = await startRoutingProxy({
      after: (router) => [entry(createAuditInterceptor(auditConfigSchema.parse({ path: auditPath }), depsOf('audit', router)))],
    });
    await placeImage('other', 'crio');
    expect((await kubeletStartsPod(NAMESPACE.crio, 'IfNotPresent')).code).toBe(grpc.status.OK);
    const records = readFileSync(auditPath, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records.map((r) => [r['method'], r['onBehalfOf'], r['backend']])).toEqual([
      ['RunPodSandbox', undefined, 'crio'],
      ['PullImage', 'CreateContainer', 'crio'],
      ['CreateContainer', undefined, 'crio'],
      ['StartContainer', undefined, 'crio'],
    ]);
    rmSync(dir, { recursive: true, force: true });
  });

  test('carry the credentials kubelet last sent for the repository, which no log or record shows', async () => {
    const dir = makeTempDir();
    const auditPath = join(dir, 'audit.log');
    routing = await startRoutingProxy({
      before: (router) => [entry(createAuditInterceptor(auditConfigSchema.parse({ path: auditPath }), depsOf('audit', router)))],
    });
    const auth = { username: 'robot', password: 'hunter2-secret', server_address: 'registry.example' };
    // kubelet pulls for a pod on containerd, with the pod's pull secret.
    expect((await kubeletStartsPod(NAMESPACE.containerd, 'Always', auth)).code).toBe(grpc.status.OK);
    // A pod on crio (IfNotPresent): kubelet is told the image is there, and pulls nothing.
    expect((await kubeletStartsPod(NAMESPACE.crio, 'IfNotPresent')).code).toBe(grpc.status.OK);
    const pull = decodeMessage('runtime.v1.PullImageRequest', routing.runtime.crio.lastCall('PullImage')?.requestBytes ?? Buffer.alloc(0));
    expect(pull['auth']).toEqual(auth);
    expect(pull['sandbox_config']).toEqual(sandboxConfig('p', NAMESPACE.crio));
    const log = readFileSync(auditPath, 'utf8');
    expect(log).not.toContain('hunter2-secret');
    const own = log
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((r) => r['madeBy'] === 'routing');
    expect(own).toMatchObject({ method: 'PullImage', auth: { username: '[redacted]', password: '[redacted]' } });
    rmSync(dir, { recursive: true, force: true });
  });
});
