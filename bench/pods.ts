/**
 * Pods as kubelet describes them to a runtime, and the calls that start and remove one: shared by the soak's
 * kubelet-like load and the bench's pod-start burst. Each call goes through `unaryCall` on the given connection.
 */
import type * as http2 from 'node:http2';
import { decode, encode, frame } from './cri-messages';
import { unaryCall, type UnaryAnswer } from './load';

export interface PodTemplate {
  /** The image the pods' single container runs. */
  readonly image: string;
  readonly command: readonly string[];
  /** Parent folder of the pods' log folders. */
  readonly logDir: string;
}

/** A pod's identity: its name, namespace and UID, unique per `n`. */
export interface PodName {
  readonly name: string;
  readonly namespace: string;
  readonly uid: string;
}

export function podName(namespace: string, n: number): PodName {
  return { name: `${namespace}-${n}`, namespace, uid: `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}` };
}

const SERVICE: Readonly<Record<string, string>> = {
  PullImage: 'ImageService',
  ImageStatus: 'ImageService',
  ImageFsInfo: 'ImageService',
  ListImages: 'ImageService',
};

/** One CRI call with its request built from `fields` as `<method>Request`. */
export function criCall(
  session: http2.ClientHttp2Session,
  method: string,
  fields: Record<string, unknown>,
  timeoutMs: number,
): Promise<UnaryAnswer> {
  const path = `/runtime.v1.${SERVICE[method] ?? 'RuntimeService'}/${method}`;
  return unaryCall(session, path, frame(encode(`${method}Request`, fields)), timeoutMs);
}

/** The pod's sandbox config, as kubelet sends it in RunPodSandbox and again in CreateContainer. */
export function sandboxConfig(pod: PodName, template: PodTemplate): Record<string, unknown> {
  const labels = { 'io.kubernetes.pod.name': pod.name, 'io.kubernetes.pod.namespace': pod.namespace, 'io.kubernetes.pod.uid': pod.uid };
  return {
    metadata: { name: pod.name, namespace: pod.namespace, uid: pod.uid, attempt: 0 },
    hostname: pod.name,
    log_directory: `${template.logDir}/${pod.namespace}_${pod.name}_${pod.uid}`,
    labels,
    annotations: { 'kubernetes.io/config.source': 'api', 'kubernetes.io/config.seen': new Date().toISOString() },
    linux: { cgroup_parent: '' },
  };
}

/** CreateContainer's request for the pod's one container, `app`. */
export function createContainerRequest(pod: PodName, sandboxId: string, config: Record<string, unknown>, template: PodTemplate) {
  return {
    pod_sandbox_id: sandboxId,
    config: {
      metadata: { name: 'app', attempt: 0 },
      image: { image: template.image, user_specified_image: template.image },
      command: template.command,
      labels: {
        'io.kubernetes.pod.name': pod.name,
        'io.kubernetes.pod.namespace': pod.namespace,
        'io.kubernetes.pod.uid': pod.uid,
        'io.kubernetes.container.name': 'app',
      },
      annotations: {
        'io.kubernetes.container.restartCount': '0',
        'io.kubernetes.container.terminationMessagePath': '/dev/termination-log',
      },
      log_path: 'app/0.log',
      linux: {},
    },
    sandbox_config: config,
  };
}

/** A string field of a response message, or undefined when the call failed or the field is empty. */
export function responseString(answer: UnaryAnswer, type: string, field: string): string | undefined {
  if (answer.code !== 0) return undefined;
  const value = decode(type, answer.body)[field];
  return typeof value === 'string' && value !== '' ? value : undefined;
}
