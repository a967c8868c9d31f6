/**
 * `verify` rules at the doors where a call names several images: image volumes of a CreateContainer and the
 * containers (and their image volumes) of a RestorePod. Each image is verified on its own against a real registry
 * holding images signed by the test; the call passes only if each is signed, and the audit record carries each
 * image's verification.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { auditConfigSchema, createAuditInterceptor } from '../../src/interceptors/audit';
import { createImagePolicyInterceptor, imagePolicySchema } from '../../src/interceptors/image-policy';
import { decodeMessage, encodeMessage } from '../../src/messages/codec';
import type { Registry as RegistryServer } from '../e2e/harness/registry';
import type { OciRegistry } from '../support/oci-registry';
import { startTestRegistry, stopTestRegistry } from '../support/test-registry';
import { depsForTestProxy, startTestProxy, type RawClient, type TestProxy } from '../support/proxy-harness';
import { cosignSignWithKey, generateKey, type SigningKey } from '../support/signing';

jest.setTimeout(120_000);

const CREATE = '/runtime.v1.RuntimeService/CreateContainer';
const RESTORE = '/runtime.v1.RuntimeService/RestorePod';

interface PushedImage {
  /** The name the pod spec gives it. */
  readonly name: string;
  readonly digest: string;
  /** The ID the fake runtime knows it by, as kubelet sends it for image volumes. */
  readonly id: string;
}

let dir: string;
let server: RegistryServer;
let registry: OciRegistry;
let key: SigningKey;
let keyFile: string;
let counter = 0;
let proxy: TestProxy;
let client: RawClient;
let auditLog: string;
/** What the fake runtime's ImageStatus knows: image ID → its names (tag and repository digest). */
let onNode: Map<string, string[]>;

/** An image in its own repository, signed by the test's key or not, and on the node under its ID. */
async function pushed(signed: boolean): Promise<PushedImage> {
  const repository = `prod/app-${++counter}`;
  const manifest = await registry.pushImage(repository, 'v1', `doors ${counter}`);
  if (signed) await cosignSignWithKey(registry, repository, manifest.digest, key);
  const name = `${registry.host}/${repository}:v1`;
  const id = `sha256:${String(counter).padStart(64, '0')}`;
  onNode.set(id, [name, `${registry.host}/${repository}@${manifest.digest}`]);
  return { name, digest: manifest.digest, id };
}

beforeAll(async () => {
  ({ dir, server, registry } = await startTestRegistry('cri-proxy-provenance-doors-'));
  key = generateKey();
  keyFile = join(dir, 'release.pub');
  await writeFile(keyFile, key.publicPem);
});

afterAll(async () => {
  await stopTestRegistry(server, dir);
});

beforeEach(async () => {
  const metrics = new Registry();
  onNode = new Map();
  auditLog = join(dir, `audit-${++counter}.log`);
  const audit = createAuditInterceptor(auditConfigSchema.parse({ path: auditLog }), depsForTestProxy('audit', metrics).deps);
  const { deps, bind } = depsForTestProxy('images', metrics);
  const policy = imagePolicySchema.parse({
    stateDir: join(dir, `state-${counter}`),
    registries: { [server.host]: { plainHttp: true } },
    rules: [{ name: 'prod-signed', match: { images: [`${server.host}/prod/**`] }, action: 'allow', verify: [{ keys: [keyFile] }] }],
  });
  proxy = await startTestProxy({
    entries: [audit, createImagePolicyInterceptor(policy, deps)].map((interceptor) => ({
      interceptor,
      onError: 'failClosed' as const,
      methods: undefined,
    })),
  });
  bind(proxy);
  client = proxy.client();
  proxy.runtime.on('ImageStatus', {
    respond: (call) => {
      const asked = decodeMessage('runtime.v1.ImageStatusRequest', call.requestBytes)['image'] as { image?: string } | undefined;
      const id = asked?.image ?? '';
      const names = onNode.get(id);
      return encodeMessage('runtime.v1.ImageStatusResponse', names === undefined ? {} : { image: { id, repo_digests: names } });
    },
  });
});

afterEach(async () => {
  await proxy.close();
});

const runtimeSaw = (name: string): number => proxy.runtime.calls.filter((c) => c.name === name).length;

/** A container config running `image` (as kubelet sends it: the name written and the ID) with image volumes by ID. */
function container(name: string, image: PushedImage, volumes: readonly PushedImage[] = []): Record<string, unknown> {
  return {
    metadata: { name },
    image: { image: image.id, user_specified_image: image.name },
    mounts: [
      { container_path: '/host', host_path: '/var/lib/x' },
      ...volumes.map((v, i) => ({ container_path: `/v${i}`, image: { image: v.id }, readonly: true })),
    ],
  };
}

async function create(config: Record<string, unknown>): Promise<grpc.StatusObject> {
  const request = encodeMessage('runtime.v1.CreateContainerRequest', {
    pod_sandbox_id: 'sb',
    config,
    sandbox_config: { metadata: { name: 'p', namespace: 'prod' } },
  });
  return (await client.unary(CREATE, request)).status;
}

async function restore(configs: readonly Record<string, unknown>[]): Promise<grpc.StatusObject> {
  const request = encodeMessage('runtime.v1.RestorePodRequest', {
    checkpoint_path: '/var/lib/checkpoints/p',
    config: { metadata: { name: 'p', namespace: 'prod', uid: 'u1' } },
    container_configs: configs,
  });
  return (await client.unary(RESTORE, request)).status;
}

interface ImageRecord {
  readonly image: string;
  readonly at: string;
  readonly action: string;
  readonly rule?: string;
  readonly verification?: Record<string, unknown>;
}

async function policyRecords(): Promise<{ action: string; images?: ImageRecord[] }[]> {
  const text = await readFile(auditLog, 'utf8');
  return text
    .trim()
    .split('\n')
    .map((line) => (JSON.parse(line) as { policy: { action: string; images?: ImageRecord[] } }).policy);
}

const SIGNED_BY_KEY = { key: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) as unknown };

function verified(image: PushedImage): Record<string, unknown> {
  return { result: 'verified', digest: image.digest, signer: SIGNED_BY_KEY };
}

describe('verify rules at doors naming several images', () => {
  test('image volume: a signed one is allowed with its signer in its own audit record; an unsigned one is refused', async () => {
    const app = await pushed(true);
    const signedVolume = await pushed(true);
    const unsignedVolume = await pushed(false);

    expect((await create(container('c', app, [signedVolume]))).code).toBe(grpc.status.OK);
    const refused = await create(container('c', app, [signedVolume, unsignedVolume]));
    expect(refused.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(refused.details).toMatch(
      new RegExp(
        `^image volume "${unsignedVolume.id}" \\(${unsignedVolume.name.replace(/\./g, '\\.')}\\) at config\\.mounts\\[2\\]\\.image denied by rule "prod-signed" .*: ` +
          `not verified: no signature found for ${unsignedVolume.digest}`,
      ),
    );
    expect(runtimeSaw('CreateContainer')).toBe(1);

    const [allowed, denied] = await policyRecords();
    expect(allowed?.images).toEqual([
      expect.objectContaining({ image: app.name, at: 'config.image', action: 'allow', verification: verified(app) }),
      expect.objectContaining({
        image: signedVolume.id,
        at: 'config.mounts[1].image',
        action: 'allow',
        verification: verified(signedVolume),
      }),
    ]);
    expect(denied?.action).toBe('deny');
    expect(denied?.images?.[2]).toEqual(
      expect.objectContaining({
        image: unsignedVolume.id,
        at: 'config.mounts[2].image',
        action: 'deny',
        rule: 'prod-signed',
        verification: { result: 'unverified', digest: unsignedVolume.digest, failure: 'no-signature' },
      }),
    );
    expect(denied?.images?.[1]?.verification).toMatchObject({ result: 'verified', signer: SIGNED_BY_KEY });
  });

  test('RestorePod: each container and image volume is verified; an unsigned one refuses the restore, naming where', async () => {
    const first = await pushed(true);
    const second = await pushed(true);
    const volume = await pushed(true);
    const unsigned = await pushed(false);

    expect((await restore([container('a', first), container('b', second, [volume])])).code).toBe(grpc.status.OK);
    const refused = await restore([container('a', first), container('b', unsigned)]);
    expect(refused.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(refused.details).toMatch(
      new RegExp(
        `^image "${unsigned.name}" \\(${unsigned.id}\\) at container_configs\\[1\\]\\.image denied by rule "prod-signed" .*no signature`,
      ),
    );
    const refusedVolume = await restore([container('a', first, [unsigned])]);
    expect(refusedVolume.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(refusedVolume.details).toMatch(
      /^image volume "sha256:\d+" \(.+\) at container_configs\[0\]\.mounts\[1\]\.image denied by rule "prod-signed"/,
    );
    expect(runtimeSaw('RestorePod')).toBe(1);

    const [allowed, denied, deniedVolume] = await policyRecords();
    expect(allowed?.images?.map((i) => [i.at, i.verification])).toEqual([
      ['container_configs[0].image', verified(first)],
      ['container_configs[1].image', verified(second)],
      ['container_configs[1].mounts[1].image', verified(volume)],
    ]);
    expect(denied?.images?.map((i) => [i.at, i.action, i.verification?.['result']])).toEqual([
      ['container_configs[0].image', 'allow', 'verified'],
      ['container_configs[1].image', 'deny', 'unverified'],
    ]);
    expect(deniedVolume?.images?.[1]).toMatchObject({ image: unsigned.id, action: 'deny', verification: { failure: 'no-signature' } });
  });
});
