/**
 * What an audit record says about the pods and containers a call creates, held to the CRI schema: every field of
 * the requests that create pods and containers (and of the checkpoints that export them) is recorded, or left
 * out for a stated reason. A field the schema gains fails this test until it is one or the other.
 */
import * as protobuf from 'protobufjs';
import { buildRecord, compileRedactor } from '../../src/audit/record';
import { methodTable } from '../../src/chain/method-table';
import { decodeMessage, encodeMessage } from '../../src/messages/codec';
import { loadSchema, walkFields, type WalkedField } from '../support/schema-walk';

/** Recorded as the record field named (docs/audit.md), or left out for the reason given. */
type Entry = { readonly recorded: string } | { readonly omitted: string };
const rec = (recorded: string): Entry => ({ recorded });
const omit = (omitted: string): Entry => ({ omitted });

const SIZES = omit('sizes and shares, not privileges (UpdateContainerResources records changes to them)');
const WINDOWS = omit('Windows settings: cri-proxy serves Linux nodes');
const ATTEMPT = omit('a restart count');

/** Keyed `Message.field`; a message field without an entry is walked into. */
const FIELDS: Readonly<Record<string, Entry>> = {
  // The calls, their own fields.
  'RunPodSandboxRequest.runtime_handler': rec('runtimeHandler'),
  'CreateContainerRequest.pod_sandbox_id': rec('sandboxId'),
  'CreateContainerRequest.sandbox_config': omit(
    "the pod's config, recorded in full by RunPodSandbox; only its metadata (the pod) is read here",
  ),
  'RestorePodRequest.checkpoint_path': rec('checkpointPath'),
  'RestorePodRequest.runtime_handler': rec('runtimeHandler'),
  'RestorePodRequest.options': rec('options'),
  'CheckpointContainerRequest.container_id': rec('container.id'),
  'CheckpointContainerRequest.location': rec('location'),
  'CheckpointContainerRequest.timeout': rec('timeout'),
  'CheckpointPodRequest.pod_sandbox_id': rec('sandboxId'),
  'CheckpointPodRequest.output_path': rec('outputPath'),
  'CheckpointPodRequest.container_ids': rec('containerIds'),
  'CheckpointPodRequest.options': rec('options'),

  // A pod.
  'PodSandboxConfig.hostname': omit("the pod's host name, which grants nothing"),
  'PodSandboxConfig.log_directory': omit('a folder kubelet chose itself for the pod’s logs'),
  'PodSandboxConfig.dns_config': omit('name servers and search domains, which grant nothing'),
  'PodSandboxConfig.labels': rec('labels'),
  'PodSandboxConfig.annotations': rec('annotations'),
  'PodSandboxConfig.windows': WINDOWS,
  'PodSandboxMetadata.name': rec('pod.name'),
  'PodSandboxMetadata.uid': rec('pod.uid'),
  'PodSandboxMetadata.namespace': rec('pod.namespace'),
  'PodSandboxMetadata.attempt': ATTEMPT,
  'PortMapping.protocol': rec('portMappings[].protocol'),
  'PortMapping.container_port': rec('portMappings[].containerPort'),
  'PortMapping.host_port': rec('portMappings[].hostPort'),
  'PortMapping.host_ip': rec('portMappings[].hostIp'),
  'LinuxPodSandboxConfig.cgroup_parent': omit('the cgroup kubelet places the pod in, from its QoS class'),
  'LinuxPodSandboxConfig.sysctls': rec('sysctls'),
  'LinuxPodSandboxConfig.overhead': SIZES,
  'LinuxPodSandboxConfig.resources': SIZES,
  'LinuxSandboxSecurityContext.readonly_rootfs': rec('readonlyRootfs'),
  'LinuxSandboxSecurityContext.supplemental_groups': rec('supplementalGroups'),
  'LinuxSandboxSecurityContext.privileged': rec('privileged'),
  'LinuxSandboxSecurityContext.seccomp_profile_path': rec('seccompProfilePath'),
  'LinuxSandboxSecurityContext.supplemental_groups_policy': rec('supplementalGroupsPolicy'),

  // A container.
  'ContainerConfig.command': omit('may carry secrets, as args do; the image says what runs'),
  'ContainerConfig.args': omit('may carry secrets (tokens and passwords on command lines)'),
  'ContainerConfig.working_dir': omit('a folder inside the container'),
  'ContainerConfig.labels': rec('labels'),
  'ContainerConfig.annotations': rec('annotations'),
  'ContainerConfig.log_path': omit('a file kubelet chose itself for the container’s output'),
  'ContainerConfig.stdin': omit('whether the container is interactive, which grants nothing'),
  'ContainerConfig.stdin_once': omit('whether the container is interactive, which grants nothing'),
  'ContainerConfig.tty': omit('whether the container is interactive, which grants nothing'),
  'ContainerConfig.windows': WINDOWS,
  'ContainerConfig.stop_signal': omit('how the container is asked to stop'),
  'ContainerMetadata.name': rec('container.name (containers[].name of a restore)'),
  'ContainerMetadata.attempt': ATTEMPT,
  'ImageSpec.image': rec('image, mounts[].image'),
  'ImageSpec.user_specified_image': rec('userSpecifiedImage, mounts[].userSpecifiedImage'),
  'ImageSpec.annotations': omit("hints for picking one platform of a multi-arch image; the image's name is recorded"),
  'ImageSpec.runtime_handler': omit("which runtime handler's image store holds it; the pod's runtime handler is recorded"),
  'ImageSpec.image_ref': omit('filled in by runtimes in statuses; requests do not use it'),
  'KeyValue.key': rec('env[].name'),
  'KeyValue.value': omit('environment values hold secrets'),
  'Mount.container_path': rec('mounts[].containerPath'),
  'Mount.host_path': rec('mounts[].hostPath'),
  'Mount.readonly': rec('mounts[].readonly'),
  'Mount.selinux_relabel': rec('mounts[].selinuxRelabel'),
  'Mount.propagation': rec('mounts[].propagation'),
  'Mount.recursive_read_only': rec('mounts[].recursiveReadOnly'),
  'Mount.image_sub_path': rec('mounts[].imageSubPath'),
  'Mount.mount_options': rec('mounts[].mountOptions'),
  'Device.container_path': rec('devices[].containerPath'),
  'Device.host_path': rec('devices[].hostPath'),
  'Device.permissions': rec('devices[].permissions'),
  'CDIDevice.name': rec('cdiDevices[]'),
  'LinuxContainerConfig.resources': SIZES,
  'LinuxContainerSecurityContext.privileged': rec('privileged'),
  'LinuxContainerSecurityContext.run_as_username': rec('runAsUsername'),
  'LinuxContainerSecurityContext.readonly_rootfs': rec('readonlyRootfs'),
  'LinuxContainerSecurityContext.supplemental_groups': rec('supplementalGroups'),
  'LinuxContainerSecurityContext.apparmor_profile': rec('apparmorProfile'),
  'LinuxContainerSecurityContext.seccomp_profile_path': rec('seccompProfilePath'),
  'LinuxContainerSecurityContext.no_new_privs': rec('noNewPrivs'),
  'LinuxContainerSecurityContext.masked_paths': omit('long lists of /proc and /sys paths, the same on nearly every container'),
  'LinuxContainerSecurityContext.readonly_paths': omit('long lists of /proc and /sys paths, the same on nearly every container'),
  'LinuxContainerSecurityContext.supplemental_groups_policy': rec('supplementalGroupsPolicy'),
  'Capability.add_capabilities': rec('capabilities.add'),
  'Capability.drop_capabilities': rec('capabilities.drop'),
  'Capability.add_ambient_capabilities': rec('capabilities.addAmbient'),

  // Shared by pods and containers.
  'NamespaceOption.network': rec('hostNamespaces (when NODE)'),
  'NamespaceOption.pid': rec('hostNamespaces (when NODE)'),
  'NamespaceOption.ipc': rec('hostNamespaces (when NODE)'),
  'NamespaceOption.target_id': rec('namespaceTarget'),
  'UserNamespace.mode': rec('userNamespace.mode'),
  'IDMapping.host_id': rec('userNamespace.uids[].hostId, mounts[].uidMappings[].hostId, …'),
  'IDMapping.container_id': rec('userNamespace.uids[].containerId, mounts[].uidMappings[].containerId, …'),
  'IDMapping.length': rec('userNamespace.uids[].length, mounts[].uidMappings[].length, …'),
  'SELinuxOption.user': rec('selinux.user'),
  'SELinuxOption.role': rec('selinux.role'),
  'SELinuxOption.type': rec('selinux.type'),
  'SELinuxOption.level': rec('selinux.level'),
  'Int64Value.value': rec('runAsUser, runAsGroup'),
  'SecurityProfile.profile_type': rec('seccomp, apparmor'),
  'SecurityProfile.localhost_ref': rec('seccomp, apparmor (Localhost:<profile>)'),
};

/** The calls whose records the walk covers: those that create pods and containers, and those that export them. */
const METHODS = ['RunPodSandbox', 'CreateContainer', 'RestorePod', 'CheckpointContainer', 'CheckpointPod'];

const key = (f: WalkedField): string => `${f.owner.replace(/^runtime\.v1\./, '')}.${f.field.name}`;

interface Unclassified {
  readonly method: string;
  readonly path: string;
  readonly field: string;
}

function walk(root: protobuf.Root, method: string): WalkedField[] {
  const requestType = methodTable.find((m) => m.name === method)?.requestType ?? '';
  return walkFields(root.lookupType(requestType), (f) => !Object.hasOwn(FIELDS, key(f)));
}

/** Fields the walk reaches that are neither in the table nor a message it walked into. */
function unclassified(root: protobuf.Root): Unclassified[] {
  return METHODS.flatMap((method) =>
    walk(root, method)
      .filter((f) => !Object.hasOwn(FIELDS, key(f)) && (f.type === undefined || f.field.map))
      .map((f) => ({ method, path: f.path, field: key(f) })),
  );
}

/** Values a field may take other than its default, one at a time. */
function samples(field: protobuf.Field): unknown[] {
  const one = ((): unknown[] => {
    if (field.resolvedType instanceof protobuf.Enum) return Object.keys(field.resolvedType.values).slice(1);
    if (field.type === 'bool') return [true];
    if (field.type === 'string') return ['sample'];
    if (field.type === 'bytes') return [Buffer.from('sample')];
    return [7];
  })();
  if (field.map) return [{ 'sample-key': 'sample-value' }];
  return field.repeated ? one.map((v) => [v]) : one;
}

/** A request with every message on the path present, and the last field set to `value` (absent if undefined). */
function requestAt(path: string, value: unknown): Record<string, unknown> {
  const steps = path.split('.');
  const request: Record<string, unknown> = {};
  let at = request;
  for (const step of steps.slice(0, -1)) {
    const inner: Record<string, unknown> = {};
    at[step.replace(/\[\]$/, '')] = step.endsWith('[]') ? [inner] : inner;
    at = inner;
  }
  if (value !== undefined) at[steps.at(-1) ?? ''] = value;
  return request;
}

const redactor = compileRedactor({ annotationKeys: [], labelKeys: [] });

function recordOf(method: string, request: Record<string, unknown>): string {
  const info = methodTable.find((m) => m.name === method);
  if (info?.requestType === undefined) throw new Error(`no method ${method}`);
  const decoded = decodeMessage(info.requestType, encodeMessage(info.requestType, request));
  const outcome = { code: 0, message: '', fromProxy: false };
  const input = { method: info, request: decoded, requestError: undefined, response: undefined, outcome, durationMs: 1 };
  return JSON.stringify(buildRecord({ ...input, backend: undefined, decision: undefined, time: new Date(0) }, redactor));
}

describe('audit records hold every security-relevant field of the CRI schema, or say why not', () => {
  const schema = loadSchema();

  test('every field the walk reaches is recorded or left out with its reason', () => {
    expect(unclassified(schema)).toEqual([]);
    const reached = new Set(METHODS.flatMap((m) => walk(schema, m).map(key)));
    expect(Object.keys(FIELDS).filter((k) => !reached.has(k))).toEqual([]);
  });

  test('a field the schema gains fails the walk until it is classified', () => {
    const root = loadSchema();
    root.lookupType('runtime.v1.LinuxContainerSecurityContext').add(new protobuf.Field('proc_mount', 90, 'string'));
    root.lookupType('runtime.v1.Mount').add(new protobuf.Field('noexec', 91, 'bool'));
    root.resolveAll();
    expect(unclassified(root).map((u) => `${u.method}: ${u.path}`)).toEqual([
      'CreateContainer: config.mounts[].noexec',
      'CreateContainer: config.linux.security_context.proc_mount',
      'RestorePod: container_configs[].mounts[].noexec',
      'RestorePod: container_configs[].linux.security_context.proc_mount',
    ]);
  });

  const leaves = METHODS.flatMap((method) =>
    walk(schema, method)
      .filter((f) => f.type === undefined || f.field.map)
      .map((f) => ({ method, path: f.path, entry: FIELDS[key(f)], field: f.field })),
  );

  test.each(leaves.map((l) => [`${l.method}: ${l.path}`, l] as const))('%s', (_, { method, path, entry, field }) => {
    const without = recordOf(method, requestAt(path, undefined));
    const changed = samples(field).some((value) => recordOf(method, requestAt(path, value)) !== without);
    expect([path, changed]).toEqual([path, entry !== undefined && 'recorded' in entry]);
  });
});
