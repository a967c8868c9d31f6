/**
 * What an audit record says about the pods and containers a call creates: identity, images, mounts, devices and
 * every privilege a security reviewer asks about. docs/audit.md lists each field; fields left out are left out
 * on purpose (a test walks the CRI schema and holds every field to one or the other).
 */
import { REDACTED } from '../values';
import type { DecodedMessage } from '../messages/codec';
import { clip, compact, enumName, flag, id, list, num, numbers, obj, str, stringMap, strings } from './record-values';

/** Decides which label and annotation values are replaced by the redaction marker. */
export interface Redactor {
  readonly annotation: (key: string) => boolean;
  readonly label: (key: string) => boolean;
}

type Details = Record<string, unknown>;

/** A pod's config (RunPodSandbox, RestorePod): labels, annotations, host ports, sysctls and its security context. */
export function sandboxDetails(config: DecodedMessage | undefined, redactor: Redactor): Details {
  const linux = obj(config, 'linux');
  return (
    compact({
      labels: stringMap(obj(config, 'labels'), redactor.label, REDACTED),
      annotations: stringMap(obj(config, 'annotations'), redactor.annotation, REDACTED),
      portMappings: list(config?.port_mappings)?.map((p) =>
        compact({
          protocol: enumName(p.protocol) ?? 'TCP',
          containerPort: num(p.container_port),
          hostPort: num(p.host_port),
          hostIp: str(p.host_ip),
        }),
      ),
      sysctls: stringMap(obj(linux, 'sysctls')),
      ...securityDetails(obj(linux, 'security_context')),
    }) ?? {}
  );
}

/** A container's config (CreateContainer, each of RestorePod's): what it runs, what it sees of the node, as whom. */
export function containerDetails(config: DecodedMessage | undefined, redactor: Redactor): Details {
  return (
    compact({
      userSpecifiedImage: str(obj(config, 'image')?.user_specified_image),
      labels: stringMap(obj(config, 'labels'), redactor.label, REDACTED),
      annotations: stringMap(obj(config, 'annotations'), redactor.annotation, REDACTED),
      // Names tell what was configured; values are where the secrets are.
      env: list(config?.envs)?.map((e) => ({ name: clip(str(e.key) ?? ''), value: REDACTED })),
      mounts: list(config?.mounts)?.map(mountDetails),
      devices: list(config?.devices)?.map((d) =>
        compact({ hostPath: str(d.host_path), containerPath: str(d.container_path), permissions: str(d.permissions) }),
      ),
      cdiDevices: list(config?.CDI_devices)?.map((d) => str(d.name) ?? ''),
      ...securityDetails(obj(obj(config, 'linux'), 'security_context')),
    }) ?? {}
  );
}

/** One container of a RestorePod: its name, its ID (from the answer), its image and the rest as CreateContainer's. */
export function restoredContainer(config: DecodedMessage, restored: readonly DecodedMessage[], redactor: Redactor): Details {
  const name = str(obj(config, 'metadata')?.name);
  const containerId = restored.find((r) => name !== undefined && r.name === name)?.container_id;
  return compact({ name, id: str(containerId), image: str(obj(config, 'image')?.image), ...containerDetails(config, redactor) }) ?? {};
}

function mountDetails(mount: DecodedMessage): Details {
  const image = obj(mount, 'image');
  return (
    compact({
      containerPath: str(mount.container_path),
      hostPath: str(mount.host_path),
      image: str(image?.image),
      userSpecifiedImage: str(image?.user_specified_image),
      imageSubPath: str(mount.image_sub_path),
      readonly: flag(mount.readonly),
      recursiveReadOnly: flag(mount.recursive_read_only),
      propagation: enumName(mount.propagation),
      selinuxRelabel: flag(mount.selinux_relabel),
      uidMappings: idMappings(mount.uidMappings),
      gidMappings: idMappings(mount.gidMappings),
      mountOptions: strings(mount.mount_options),
    }) ?? {}
  );
}

/** The fields container and pod security contexts share, and those only containers have. */
function securityDetails(context: DecodedMessage | undefined): Details {
  if (!context) return {};
  const namespaces = obj(context, 'namespace_options');
  const capabilities = obj(context, 'capabilities');
  const selinux = obj(context, 'selinux_options');
  return (
    compact({
      privileged: flag(context.privileged),
      hostNamespaces: hostNamespaces(namespaces),
      namespaceTarget: str(namespaces?.target_id),
      userNamespace: userNamespace(obj(namespaces, 'userns_options')),
      capabilities: capabilities
        ? compact({
            add: strings(capabilities.add_capabilities),
            drop: strings(capabilities.drop_capabilities),
            addAmbient: strings(capabilities.add_ambient_capabilities),
          })
        : undefined,
      runAsUser: wrapped(obj(context, 'run_as_user')),
      runAsUsername: str(context.run_as_username),
      runAsGroup: wrapped(obj(context, 'run_as_group')),
      supplementalGroups: numbers(context.supplemental_groups),
      supplementalGroupsPolicy: enumName(context.supplemental_groups_policy),
      readonlyRootfs: flag(context.readonly_rootfs),
      noNewPrivs: flag(context.no_new_privs),
      selinux: selinux
        ? compact({ user: str(selinux.user), role: str(selinux.role), type: str(selinux.type), level: str(selinux.level) })
        : undefined,
      seccomp: profile(obj(context, 'seccomp')),
      apparmor: profile(obj(context, 'apparmor')),
      // Older kubelets send only these; runtimes still honour them.
      seccompProfilePath: str(context.seccomp_profile_path),
      apparmorProfile: str(context.apparmor_profile),
    }) ?? {}
  );
}

/** Namespaces shared with the node. */
function hostNamespaces(options: DecodedMessage | undefined): string[] | undefined {
  if (!options) return undefined;
  const shared = ['network', 'pid', 'ipc'].filter((ns) => options[ns] === 'NODE');
  return shared.length > 0 ? shared : undefined;
}

/** The user namespace: the node's (`NODE`), or the pod's own (`POD`) with its ID mappings. */
function userNamespace(userns: DecodedMessage | undefined): Details | undefined {
  if (!userns) return undefined;
  return compact({ mode: enumName(userns.mode) ?? 'POD', uids: idMappings(userns.uids), gids: idMappings(userns.gids) });
}

function idMappings(value: unknown): Details[] | undefined {
  return list(value)?.map((m) => ({ hostId: id(m.host_id), containerId: id(m.container_id), length: id(m.length) }));
}

/** A wrapped int64 (run_as_user): present means set, even to 0 (root). */
function wrapped(value: DecodedMessage | undefined): number | string | undefined {
  return value === undefined ? undefined : id(value.value);
}

/** `RuntimeDefault`, `Unconfined`, or `Localhost:<profile>`. */
function profile(value: DecodedMessage | undefined): string | undefined {
  if (!value) return undefined;
  const type = enumName(value.profile_type) ?? 'RuntimeDefault';
  const ref = str(value.localhost_ref);
  return ref === undefined ? type : `${type}:${ref}`;
}
