/**
 * Image provenance through a real containerd: images copied into a registry of the test's own and signed there
 * (cosign's layout, a key made for the run); the proxy verifies at PullImage and at CreateContainer, and after a
 * restart with the registry stopped still starts what it verified before.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createCriClient, stringField, type CriClient } from './harness/cri-client';
import { startEnvironment, type E2eEnvironment } from './harness/environment';
import { run } from './harness/processes';
import { restartProxy, startProxy, type RunningProxy } from './harness/proxy';
import { startRegistry, type Registry } from './harness/registry';
import { cosignSignWithKey, generateKey } from '../support/signing';
import { OciRegistry } from '../support/oci-registry';

jest.setTimeout(300_000);

let env: E2eEnvironment;
let signingRegistry: Registry;
let proxy: RunningProxy;
let via: CriClient;
let direct: CriClient;
let signed: string;
let unsigned: string;
let preloaded: string;

async function copyImage(from: string, to: string): Promise<void> {
  await run('skopeo', [
    '--insecure-policy',
    'copy',
    '--src-tls-verify=false',
    '--dest-tls-verify=false',
    `docker://${from}`,
    `docker://${to}`,
  ]);
}

async function digestOf(host: string, repository: string, tag: string): Promise<string> {
  const accept = [
    'application/vnd.oci.image.index.v1+json',
    'application/vnd.oci.image.manifest.v1+json',
    'application/vnd.docker.distribution.manifest.v2+json',
  ];
  const res = await fetch(`http://${host}/v2/${repository}/manifests/${tag}`, { method: 'HEAD', headers: { accept: accept.join(', ') } });
  const digest = res.headers.get('docker-content-digest');
  if (digest === null) throw new Error(`no digest for ${repository}:${tag}`);
  return digest;
}

function sandbox(name: string): Record<string, unknown> {
  return { metadata: { name, namespace: 'prod', uid: `${name}-uid`, attempt: 0 }, log_directory: join(env.podLogDir, name), linux: {} };
}

async function createIn(
  client: CriClient,
  pod: string,
  image: string,
  imageId: string,
): Promise<{ id?: string; code?: number; details?: string }> {
  const config = sandbox(pod);
  const podId = stringField(await client.call('RunPodSandbox', { config }), 'pod_sandbox_id');
  try {
    const created = await client.call('CreateContainer', {
      pod_sandbox_id: podId,
      sandbox_config: config,
      config: { metadata: { name: 'c' }, image: { image: imageId, user_specified_image: image }, command: ['sleep', '60'] },
    });
    const id = stringField(created, 'container_id');
    await client.call('StartContainer', { container_id: id });
    const state = stringField(await client.call('ContainerStatus', { container_id: id }), 'status.state');
    await client.call('StopContainer', { container_id: id, timeout: 1 });
    await client.call('RemoveContainer', { container_id: id });
    return { id: state };
  } catch (err) {
    const failure = err as { code?: number; details?: string };
    return { code: failure.code ?? -1, details: failure.details ?? String(err) };
  } finally {
    await client.call('StopPodSandbox', { pod_sandbox_id: podId });
    await client.call('RemovePodSandbox', { pod_sandbox_id: podId });
  }
}

beforeAll(async () => {
  env = await startEnvironment();
  const dir = join(env.workDir, 'provenance');
  await mkdir(dir, { recursive: true });
  signingRegistry = await startRegistry(dir, env.logDir);
  const host = signingRegistry.host;
  for (const repository of ['prod/signed', 'prod/unsigned', 'prod/preloaded']) await copyImage(env.busyboxImage, `${host}/${repository}:1`);
  const key = generateKey('p256');
  const keyFile = join(dir, 'release.pub');
  await writeFile(keyFile, key.publicPem);
  await cosignSignWithKey(new OciRegistry(host), 'prod/signed', await digestOf(host, 'prod/signed', '1'), key);
  [signed, unsigned, preloaded] = ['signed', 'unsigned', 'preloaded'].map((r) => `${host}/prod/${r}:1`) as [string, string, string];
  proxy = await startProxy(
    env,
    'cri-proxy',
    [
      'http:',
      '  listen: ""',
      'interceptors:',
      '  - name: images',
      '    type: image-policy',
      '    config:',
      `      stateDir: ${join(dir, 'state')}`,
      `      registries: { "${host}": { plainHttp: true } }`,
      '      rules:',
      `        - { name: prod-signed, match: { images: ["${host}/prod/**"] }, action: allow, verify: [{ keys: [${keyFile}] }] }`,
      `        - { name: local, match: { images: ["${env.registryHost}/**"] }, action: allow }`,
    ].join('\n'),
  );
  via = createCriClient(proxy.socketPath);
  direct = createCriClient(env.containerdSocket);
});

afterAll(async () => {
  via?.close();
  direct?.close();
  await env?.stop();
  await signingRegistry?.stop();
});

describe('only signed images run', () => {
  let signedId = '';

  test('a signed image pulls through the proxy and runs', async () => {
    signedId = stringField(await via.call('PullImage', { image: { image: signed } }), 'image_ref');
    expect(signedId).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(await createIn(via, 'signed-pod', signed, signedId)).toEqual({ id: 'CONTAINER_RUNNING' });
  });

  test('an unsigned image is refused at PullImage', async () => {
    const refused = await via.call('PullImage', { image: { image: unsigned } }).then(
      () => undefined,
      (err: unknown) => err as { code: number; details: string },
    );
    expect(refused?.code).toBe(7); // PERMISSION_DENIED
    expect(refused?.details).toMatch(/denied by rule "prod-signed" .*not verified: no signature found/);
  });

  test('an unsigned image already on the node is refused at CreateContainer', async () => {
    // Pulled behind the proxy's back: the second door must still hold.
    const id = stringField(await direct.call('PullImage', { image: { image: preloaded } }), 'image_ref');
    const result = await createIn(via, 'preloaded-pod', preloaded, id);
    expect(result.code).toBe(7);
    expect(result.details).toMatch(/no signature found for sha256:[0-9a-f]{64} in .*prod\/preloaded/);
  });

  test('after a restart with the registry stopped, a verified image still starts', async () => {
    await signingRegistry.stop();
    via.close();
    proxy = await restartProxy(env, proxy);
    via = createCriClient(proxy.socketPath);
    expect(await createIn(via, 'remembered-pod', signed, signedId)).toEqual({ id: 'CONTAINER_RUNNING' });
    // What was never verified cannot be now: the registry is gone.
    const preloadedId = stringField(await direct.call('ImageStatus', { image: { image: preloaded } }), 'image.id');
    const refused = await createIn(via, 'unknown-pod', preloaded, preloadedId);
    expect(refused.code).toBe(14); // UNAVAILABLE
    expect(refused.details).toContain(`registry ${signingRegistry.host}`);
  });
});
