import { encodeMessage } from '../src/proxy/codec';
import { frameMessage } from '../src/proxy/grpc-frames';

/** One kind of call the bench sends: what goes out, and how many response bytes a correct answer has. */
export interface CallType {
  readonly name: string;
  readonly path: string;
  /** The framed (length-prefixed) request body, sent as is on every call. */
  readonly body: Buffer;
}

/** Roughly what a busy node's kubelet gets back from ListContainers on every relist. */
export const LIST_CONTAINERS_TARGET_BYTES = 20 * 1024;

export function versionCall(): CallType {
  return {
    name: 'Version',
    path: '/runtime.v1.RuntimeService/Version',
    body: frameMessage(encodeMessage('runtime.v1.VersionRequest', { version: '0.1.0' })),
  };
}

export function listContainersCall(): CallType {
  return {
    name: 'ListContainers',
    path: '/runtime.v1.RuntimeService/ListContainers',
    body: frameMessage(encodeMessage('runtime.v1.ListContainersRequest', { filter: {} })),
  };
}

/** Deterministic hex, so every run sends byte-identical messages. */
function hex(seed: number, length: number): string {
  let out = '';
  let x = seed * 2654435761 + 1;
  while (out.length < length) {
    x = (x * 1103515245 + 12345) % 2147483648;
    out += x.toString(16).padStart(8, '0');
  }
  return out.slice(0, length);
}

function container(i: number): Record<string, unknown> {
  const pod = `workload-${Math.floor(i / 2)}-${hex(i + 7, 5)}`;
  const name = i % 2 === 0 ? 'app' : 'sidecar';
  const image = i % 2 === 0 ? `registry.example.com/team/app:v1.${i % 9}` : 'registry.example.com/mesh/proxy:1.22.3';
  return {
    id: hex(i, 64),
    pod_sandbox_id: hex(i + 1000, 64),
    metadata: { name, attempt: i % 3 },
    image: { image: `sha256:${hex(i + 2000, 64)}` },
    image_ref: `sha256:${hex(i + 2000, 64)}`,
    state: 'CONTAINER_RUNNING',
    created_at: String(1_700_000_000_000_000_000 + i * 1_000_000_007),
    labels: {
      'io.kubernetes.container.name': name,
      'io.kubernetes.pod.name': pod,
      'io.kubernetes.pod.namespace': 'default',
      'io.kubernetes.pod.uid': `${hex(i + 3000, 8)}-${hex(i + 3001, 4)}-${hex(i + 3002, 4)}-${hex(i + 3003, 4)}-${hex(i + 3004, 12)}`,
    },
    annotations: {
      'io.kubernetes.container.hash': hex(i + 4000, 8),
      'io.kubernetes.container.restartCount': String(i % 3),
      'io.kubernetes.container.terminationMessagePath': '/dev/termination-log',
      'io.kubernetes.container.terminationMessagePolicy': 'File',
      'io.kubernetes.pod.terminationGracePeriod': '30',
      image,
    },
  };
}

/** An encoded ListContainersResponse of realistic containers, grown to just over `targetBytes`. */
export function listContainersResponse(targetBytes = LIST_CONTAINERS_TARGET_BYTES): Buffer {
  const containers: Record<string, unknown>[] = [];
  let encoded: Buffer = Buffer.alloc(0);
  while (encoded.length < targetBytes) {
    containers.push(container(containers.length));
    encoded = encodeMessage('runtime.v1.ListContainersResponse', { containers });
  }
  return encoded;
}
