/** Audit records of the calls that bring images and privileges to a node: image volumes, restores, checkpoints. */
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { verifyAuditFiles } from '../../src/audit/verify';
import { createImagePolicyInterceptor, imagePolicySchema } from '../../src/interceptors/image-policy';
import { encodeMessage } from '../../src/messages/codec';
import { depsForTestProxy } from '../support/proxy-harness';
import { removeAuditDirs, startAudit, type AuditHarness } from '../support/audit-harness';

const RT = '/runtime.v1.RuntimeService';
const IMAGE_ID = `sha256:${'7a'.repeat(32)}`;
const pod = { metadata: { name: 'web-0', namespace: 'shop', uid: 'uid-1' } };

const userns = {
  mode: 'POD',
  uids: [{ host_id: 65536, container_id: 0, length: 65536 }],
  gids: [{ host_id: 65536, container_id: 0, length: 65536 }],
};

/** A container with an image volume and the security settings a reviewer asks about first. */
const container = (name: string, image: string): Record<string, unknown> => ({
  metadata: { name },
  image: { image, user_specified_image: `registry.example/shop/${name}:1` },
  mounts: [
    { container_path: '/shared', host_path: '/var/lib/shared', propagation: 'PROPAGATION_BIDIRECTIONAL', mount_options: ['nosuid'] },
    {
      container_path: '/models',
      image: { image: IMAGE_ID },
      image_sub_path: 'weights',
      readonly: true,
      recursive_read_only: true,
      uidMappings: [{ host_id: 65536, container_id: 0, length: 1000 }],
    },
  ],
  devices: [{ host_path: '/dev/fuse', container_path: '/dev/fuse', permissions: 'rwm' }],
  linux: {
    security_context: {
      capabilities: { add_capabilities: ['SYS_ADMIN'], drop_capabilities: ['ALL'] },
      namespace_options: { pid: 'NODE', userns_options: userns },
      run_as_user: {},
      supplemental_groups_policy: 'Strict',
      seccomp: { profile_type: 'Unconfined' },
    },
  },
});

/** What the record says of that container. */
const recorded = {
  userSpecifiedImage: 'registry.example/shop/app:1',
  mounts: [
    { containerPath: '/shared', hostPath: '/var/lib/shared', propagation: 'PROPAGATION_BIDIRECTIONAL', mountOptions: ['nosuid'] },
    {
      containerPath: '/models',
      image: IMAGE_ID,
      imageSubPath: 'weights',
      readonly: true,
      recursiveReadOnly: true,
      uidMappings: [{ hostId: 65536, containerId: 0, length: 1000 }],
    },
  ],
  devices: [{ hostPath: '/dev/fuse', containerPath: '/dev/fuse', permissions: 'rwm' }],
  capabilities: { add: ['SYS_ADMIN'], drop: ['ALL'] },
  hostNamespaces: ['pid'],
  userNamespace: {
    mode: 'POD',
    uids: [{ hostId: 65536, containerId: 0, length: 65536 }],
    gids: [{ hostId: 65536, containerId: 0, length: 65536 }],
  },
  runAsUser: 0,
  supplementalGroupsPolicy: 'Strict',
  seccomp: 'Unconfined',
};

afterAll(removeAuditDirs);

describe('audit of image volumes, restores and checkpoints', () => {
  let h: AuditHarness;
  afterEach(async () => {
    await h.close();
  });

  test('CreateContainer: image mounts and their sub-paths, propagation, ID mappings, user namespace, groups policy', async () => {
    h = await startAudit();
    const request = encodeMessage('runtime.v1.CreateContainerRequest', {
      pod_sandbox_id: 'sb-1',
      config: container('app', IMAGE_ID),
      sandbox_config: pod,
    });
    expect((await h.client.unary(`${RT}/CreateContainer`, request)).status.code).toBe(grpc.status.OK);
    expect(h.records()[0]).toMatchObject({ method: 'CreateContainer', image: IMAGE_ID, ...recorded });
  });

  test('RunPodSandbox: the pod’s user namespace, sysctls, host ports and security context', async () => {
    h = await startAudit();
    const config = {
      ...pod,
      port_mappings: [{ protocol: 'UDP', container_port: 53, host_port: 53 }],
      linux: {
        sysctls: { 'net.ipv4.ip_unprivileged_port_start': '0' },
        security_context: { namespace_options: { network: 'NODE', userns_options: userns }, selinux_options: { type: 'spc_t' } },
      },
    };
    await h.client.unary(`${RT}/RunPodSandbox`, encodeMessage('runtime.v1.RunPodSandboxRequest', { config }));
    expect(h.records()[0]).toMatchObject({
      method: 'RunPodSandbox',
      portMappings: [{ protocol: 'UDP', containerPort: 53, hostPort: 53 }],
      sysctls: { 'net.ipv4.ip_unprivileged_port_start': '0' },
      hostNamespaces: ['network'],
      userNamespace: recorded.userNamespace,
      selinux: { type: 'spc_t' },
    });
  });

  test('RestorePod: recorded like RunPodSandbox and CreateContainer, each container with its image, image mounts and ID', async () => {
    h = await startAudit();
    h.proxy.runtime.on('RestorePod', {
      respond: encodeMessage('runtime.v1.RestorePodResponse', {
        pod_sandbox_id: 'sb-r',
        restored_containers: [
          { name: 'app', container_id: 'c-app' },
          { name: 'side', container_id: 'c-side' },
        ],
      }),
    });
    const request = encodeMessage('runtime.v1.RestorePodRequest', {
      checkpoint_path: '/var/lib/kubelet/checkpoints/web-0',
      config: { ...pod, linux: { security_context: { privileged: true } } },
      runtime_handler: 'runc',
      options: { 'restore.tcp-established': 'true' },
      container_configs: [container('app', IMAGE_ID), { metadata: { name: 'side' }, image: { image: 'registry.example/side:2' } }],
    });
    expect((await h.client.unary(`${RT}/RestorePod`, request)).status.code).toBe(grpc.status.OK);
    expect(h.records()[0]).toEqual(
      expect.objectContaining({
        method: 'RestorePod',
        pod: { namespace: 'shop', name: 'web-0', uid: 'uid-1' },
        sandboxId: 'sb-r',
        runtimeHandler: 'runc',
        checkpointPath: '/var/lib/kubelet/checkpoints/web-0',
        options: { 'restore.tcp-established': 'true' },
        privileged: true,
        containers: [
          { name: 'app', id: 'c-app', image: IMAGE_ID, ...recorded },
          { name: 'side', id: 'c-side', image: 'registry.example/side:2' },
        ],
      }),
    );
  });

  test('CheckpointContainer and CheckpointPod: what was exported, and where to', async () => {
    h = await startAudit();
    await h.client.unary(
      `${RT}/CheckpointContainer`,
      encodeMessage('runtime.v1.CheckpointContainerRequest', {
        container_id: 'c-1',
        location: '/var/lib/kubelet/checkpoints/c-1.tar',
        timeout: 30,
      }),
    );
    await h.client.unary(
      `${RT}/CheckpointPod`,
      encodeMessage('runtime.v1.CheckpointPodRequest', {
        pod_sandbox_id: 'sb-1',
        output_path: '/var/lib/kubelet/checkpoints/pod',
        container_ids: ['c-1', 'c-2'],
        options: { 'leave-running': 'true' },
      }),
    );
    const [one, all] = h.records();
    expect(one).toMatchObject({
      method: 'CheckpointContainer',
      container: { id: 'c-1' },
      location: '/var/lib/kubelet/checkpoints/c-1.tar',
      timeout: 30,
    });
    expect(all).toMatchObject({
      method: 'CheckpointPod',
      sandboxId: 'sb-1',
      outputPath: '/var/lib/kubelet/checkpoints/pod',
      containerIds: ['c-1', 'c-2'],
      options: { 'leave-running': 'true' },
    });
    expect((await verifyAuditFiles([h.path])).ok).toBe(true);
  });

  test('a CreateContainer refused for its image volume is recorded with the image, where it was, and the rule', async () => {
    const { deps, bind } = depsForTestProxy('images', new Registry());
    const rules = [
      { name: 'shop', match: { images: ['registry.example/shop/**'] }, action: 'allow' },
      { name: 'no-untrusted', match: { images: ['quay.io/**'] }, action: 'deny' },
    ];
    const policy = createImagePolicyInterceptor(imagePolicySchema.parse({ rules }), deps);
    h = await startAudit({ after: [policy] });
    bind(h.proxy);
    h.proxy.runtime.on('ImageStatus', {
      respond: encodeMessage('runtime.v1.ImageStatusResponse', { image: { id: IMAGE_ID, repo_tags: ['quay.io/x/models:1'] } }),
    });
    const request = encodeMessage('runtime.v1.CreateContainerRequest', {
      pod_sandbox_id: 'sb-1',
      config: container('app', IMAGE_ID),
      sandbox_config: pod,
    });
    expect((await h.client.unary(`${RT}/CreateContainer`, request)).status.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(h.proxy.runtime.calls.filter((c) => c.name === 'CreateContainer')).toHaveLength(0);
    const [record] = h.records();
    expect(record).toMatchObject({
      method: 'CreateContainer',
      mounts: recorded.mounts,
      outcome: { code: 7, status: 'PERMISSION_DENIED', fromProxy: true },
      policy: {
        action: 'deny',
        rule: 'no-untrusted',
        images: [
          { image: 'registry.example/shop/app:1', at: 'config.image', action: 'allow', rule: 'shop' },
          { image: IMAGE_ID, at: 'config.mounts[1].image', action: 'deny', rule: 'no-untrusted' },
        ],
      },
    });
  });
});
