/** Image policy and audit log in front of a real containerd. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCriClient, listField, stringField, type CriClient } from './harness/cri-client';
import { startEnvironment, type E2eEnvironment } from './harness/environment';
import { CRI_PROXY_CLI, startProxy } from './harness/proxy';

jest.setTimeout(180_000);

let env: E2eEnvironment;
let via: CriClient;
let direct: CriClient;
let auditLog: string;

beforeAll(async () => {
  env = await startEnvironment();
  auditLog = join(env.workDir, 'audit', 'audit.log');
  const busybox = env.busyboxImage.replace(/:[^:/]+$/, '');
  const proxy = await startProxy(
    env,
    'cri-proxy',
    [
      'http:',
      '  listen: ""',
      'interceptors:',
      '  - name: audit',
      '    type: audit',
      '    config:',
      `      path: ${auditLog}`,
      '  - name: images',
      '    type: image-policy',
      '    config:',
      '      defaultAction: deny',
      '      rules:',
      '        - name: no-busybox-in-restricted',
      `          match: { images: ["${busybox}"] }`,
      '          namespaces: [restricted]',
      '          action: deny',
      '        - name: local-registry',
      `          match: { images: ["${env.registryHost}/**"] }`,
      '          action: allow',
    ].join('\n'),
  );
  via = createCriClient(proxy.socketPath);
  direct = createCriClient(env.containerdSocket);
});

afterAll(async () => {
  via?.close();
  direct?.close();
  await env?.stop();
});

function refusal(err: unknown): { code: number; details: string } {
  return err as { code: number; details: string };
}

function sandbox(name: string, namespace: string): Record<string, unknown> {
  return { metadata: { name, namespace, uid: `${name}-uid`, attempt: 0 }, log_directory: join(env.podLogDir, name), linux: {} };
}

describe('image policy and audit through cri-proxy', () => {
  let imageId = '';

  test('an image already on the node is refused at CreateContainer by a deny rule, even by image id', async () => {
    // Pulled behind the proxy's back: the policy must still hold at the second door.
    imageId = stringField(await direct.call('PullImage', { image: { image: env.busyboxImage } }), 'image_ref');
    const config = sandbox('restricted-pod', 'restricted');
    const podId = stringField(await via.call('RunPodSandbox', { config }), 'pod_sandbox_id');
    for (const image of [env.busyboxImage, imageId]) {
      const refused = await via
        .call('CreateContainer', {
          pod_sandbox_id: podId,
          sandbox_config: config,
          config: { metadata: { name: 'c' }, image: { image }, command: ['true'] },
        })
        .then(
          () => undefined,
          (err: unknown) => err as { code: number; details: string },
        );
      expect(refused?.code).toBe(7); // PERMISSION_DENIED
      expect(refused?.details).toContain('no-busybox-in-restricted');
    }
    await via.call('StopPodSandbox', { pod_sandbox_id: podId });
    await via.call('RemovePodSandbox', { pod_sandbox_id: podId });
  });

  test('the allowed pod runs', async () => {
    const config = sandbox('allowed-pod', 'e2e');
    const podId = stringField(await via.call('RunPodSandbox', { config }), 'pod_sandbox_id');
    const created = await via.call('CreateContainer', {
      pod_sandbox_id: podId,
      sandbox_config: config,
      config: {
        metadata: { name: 'c' },
        image: { image: imageId },
        command: ['sleep', '60'],
        envs: [{ key: 'API_TOKEN', value: Buffer.from('sentinel-e2e-secret') }],
      },
    });
    const containerId = stringField(created, 'container_id');
    await via.call('StartContainer', { container_id: containerId });
    expect(stringField(await via.call('ContainerStatus', { container_id: containerId }), 'status.state')).toBe('CONTAINER_RUNNING');
    await via.call('StopContainer', { container_id: containerId, timeout: 1 });
    await via.call('RemoveContainer', { container_id: containerId });
    await via.call('StopPodSandbox', { pod_sandbox_id: podId });
    await via.call('RemovePodSandbox', { pod_sandbox_id: podId });
  });

  test('an image volume naming a denied image by ID is refused before containerd sees it, though the container image is allowed', async () => {
    const config = sandbox('volume-pod', 'restricted');
    const podId = stringField(await via.call('RunPodSandbox', { config }), 'pod_sandbox_id');
    const refused = await via
      .call('CreateContainer', {
        pod_sandbox_id: podId,
        sandbox_config: config,
        config: {
          metadata: { name: 'c' },
          image: { image: env.pauseImage },
          mounts: [{ container_path: '/tools', image: { image: imageId }, readonly: true }],
        },
      })
      .then(() => undefined, refusal);
    expect(refused?.code).toBe(7); // PERMISSION_DENIED
    expect(refused?.details).toContain(`image volume "${imageId}"`);
    expect(refused?.details).toContain('no-busybox-in-restricted');
    expect(listField(await direct.call('ListContainers', { filter: { pod_sandbox_id: podId } }), 'containers')).toEqual([]);
    await via.call('StopPodSandbox', { pod_sandbox_id: podId });
    await via.call('RemovePodSandbox', { pod_sandbox_id: podId });
  });

  test('a RestorePod naming a denied image is refused by the proxy (containerd 1.6 does not know the call)', async () => {
    const request = {
      checkpoint_path: join(env.workDir, 'checkpoints', 'restored-pod'),
      config: sandbox('restored-pod', 'restricted'),
      container_configs: [{ metadata: { name: 'c' }, image: { image: imageId } }],
    };
    const unknown = await direct.call('RestorePod', request).then(() => undefined, refusal);
    expect(unknown?.code).toBe(12); // UNIMPLEMENTED: only the proxy can refuse it
    const refused = await via.call('RestorePod', request).then(() => undefined, refusal);
    expect(refused?.code).toBe(7);
    expect(refused?.details).toContain(`image "${imageId}"`);
    expect(refused?.details).toContain('no-busybox-in-restricted');
  });

  test('the audit log of the run verifies and records the refusal, without the secret', () => {
    const verify = spawnSync(process.execPath, [CRI_PROXY_CLI, 'audit', 'verify', auditLog], { encoding: 'utf8' });
    expect(verify.status).toBe(0);
    const records = readFileSync(auditLog, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const creates = records.filter((r) => JSON.stringify(r).includes('CreateContainer'));
    expect(creates.length).toBe(4);
    const volume = records.find((r) => r.method === 'CreateContainer' && JSON.stringify(r.mounts ?? []).includes(imageId));
    expect(volume).toMatchObject({
      mounts: [{ containerPath: '/tools', image: imageId, readonly: true }],
      outcome: { code: 7, fromProxy: true },
      policy: { action: 'deny', rule: 'no-busybox-in-restricted' },
    });
    const restore = records.find((r) => r.method === 'RestorePod');
    expect(restore).toMatchObject({
      pod: { name: 'restored-pod', namespace: 'restricted' },
      containers: [{ name: 'c', image: imageId }],
      outcome: { code: 7, fromProxy: true },
      policy: { action: 'deny', rule: 'no-busybox-in-restricted' },
    });
    expect(JSON.stringify(records)).toContain('no-busybox-in-restricted');
    expect(readFileSync(auditLog, 'utf8')).not.toContain('sentinel-e2e-secret');
    expect(readFileSync(join(env.logDir, 'cri-proxy.log'), 'utf8')).not.toContain('sentinel-e2e-secret');
  });
});
