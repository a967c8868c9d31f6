/** Image policy and audit log in front of a real containerd. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCriClient, stringField, type CriClient } from './harness/cri-client';
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
      '    methods: [PullImage, CreateContainer]',
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

  test('the audit log of the run verifies and records the refusal, without the secret', () => {
    const verify = spawnSync(process.execPath, [CRI_PROXY_CLI, 'audit', 'verify', auditLog], { encoding: 'utf8' });
    expect(verify.status).toBe(0);
    const records = readFileSync(auditLog, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const creates = records.filter((r) => JSON.stringify(r).includes('CreateContainer'));
    expect(creates.length).toBe(3);
    expect(JSON.stringify(records)).toContain('no-busybox-in-restricted');
    expect(readFileSync(auditLog, 'utf8')).not.toContain('sentinel-e2e-secret');
    expect(readFileSync(join(env.logDir, 'cri-proxy.log'), 'utf8')).not.toContain('sentinel-e2e-secret');
  });
});
