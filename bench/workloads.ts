/** What the bench sends and what the fake runtime answers: CRI calls as fixed bytes, built once. */
import { encode, frame } from './cri-messages';

/**
 * `small`: a unary call whose cost is per call (the ≤ 50 µs and ≤ 60 µs targets apply). `large`: a call whose
 * cost is per byte (judged by latency against direct, and driven at a lower concurrency).
 */
export type CallSize = 'small' | 'large';

/** One kind of call the bench sends. */
export interface CallType {
  /** Unique per call type; several may share a method (ListContainers and ListContainers10k). */
  readonly name: string;
  readonly path: string;
  /** The framed (length-prefixed) request body, sent as is on every call. */
  readonly body: Buffer;
  readonly size: CallSize;
  /** Meaningful only against the fake runtime, whose answers the bench scripts (a real runtime has no such data). */
  readonly fakeOnly: boolean;
}

const RUNTIME = '/runtime.v1.RuntimeService/';

function call(name: string, method: string, request: Buffer, size: CallSize, fakeOnly = false): CallType {
  return { name, path: `${RUNTIME}${method}`, body: frame(request), size, fakeOnly };
}

/** Roughly what a busy node's kubelet gets back from ListContainers on every relist. */
export const LIST_CONTAINERS_TARGET_BYTES = 20 * 1024;
/** A node at the limit of what a CRI list answer holds (about 5 MB). */
export const LARGE_LIST_CONTAINERS = 10_000;
/** Allowed by the `kubernetes` rule of config/policies/image-policy-rules.yaml, so CreateContainer passes the chain. */
export const ALLOWED_IMAGE = 'registry.k8s.io/pause:3.9';

export function versionCall(): CallType {
  return call('Version', 'Version', encode('VersionRequest', { version: '0.1.0' }), 'small');
}

export function listContainersCall(): CallType {
  return call('ListContainers', 'ListContainers', encode('ListContainersRequest', { filter: {} }), 'small');
}

/** The request the fake runtime answers with LARGE_LIST_CONTAINERS containers (a selector nothing else sends). */
export function largeListContainersRequest(): Buffer {
  return encode('ListContainersRequest', { filter: { label_selector: { 'bench.cri-proxy/containers': String(LARGE_LIST_CONTAINERS) } } });
}

export function largeListContainersCall(): CallType {
  return call('ListContainers10k', 'ListContainers', largeListContainersRequest(), 'large', true);
}

/** The calls the bench measures by default, in report order. */
export function measuredCalls(): CallType[] {
  return [versionCall(), listContainersCall(), largeListContainersCall()];
}

/**
 * Calls measured only when BENCH_CALLS names them: the pod start calls, each as kubelet sends it, the ones the
 * pod-start feed reads (compare the `proxy` and `proxy-podstarts-off` rows).
 */
export function lifecycleCalls(): CallType[] {
  return [runPodSandboxCall(), createContainerCall(), startContainerCall()];
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

function podUid(seed: number): string {
  return `${hex(seed, 8)}-${hex(seed + 1, 4)}-${hex(seed + 2, 4)}-${hex(seed + 3, 4)}-${hex(seed + 4, 12)}`;
}

const POD_METADATA = { name: 'bench-pod', uid: podUid(42), namespace: 'default', attempt: 0 };

/** A pod as kubelet describes it in RunPodSandbox and again in CreateContainer. */
function sandboxConfig(): Record<string, unknown> {
  return {
    metadata: POD_METADATA,
    hostname: 'bench-pod',
    log_directory: `/var/log/pods/default_bench-pod_${POD_METADATA.uid}`,
    dns_config: { servers: ['10.96.0.10'], searches: ['default.svc.cluster.local', 'svc.cluster.local'], options: ['ndots:5'] },
    labels: { 'io.kubernetes.pod.name': 'bench-pod', 'io.kubernetes.pod.namespace': 'default', 'io.kubernetes.pod.uid': POD_METADATA.uid },
    annotations: { 'kubernetes.io/config.source': 'api' },
    linux: { cgroup_parent: `/kubepods/besteffort/pod${POD_METADATA.uid}` },
  };
}

export function runPodSandboxCall(): CallType {
  return call('RunPodSandbox', 'RunPodSandbox', encode('RunPodSandboxRequest', { config: sandboxConfig() }), 'small', true);
}

export function createContainerCall(): CallType {
  const request = encode('CreateContainerRequest', {
    pod_sandbox_id: hex(7, 64),
    config: {
      metadata: { name: 'app', attempt: 0 },
      // As kubelet sends it: the resolved image ID, and the name the user wrote (what the policy judges).
      image: { image: `sha256:${hex(8, 64)}`, user_specified_image: ALLOWED_IMAGE },
      command: ['/pause'],
      labels: { 'io.kubernetes.container.name': 'app', 'io.kubernetes.pod.name': 'bench-pod', 'io.kubernetes.pod.namespace': 'default' },
      log_path: 'app/0.log',
    },
    sandbox_config: sandboxConfig(),
  });
  return call('CreateContainer', 'CreateContainer', request, 'small', true);
}

export function startContainerCall(): CallType {
  return call('StartContainer', 'StartContainer', encode('StartContainerRequest', { container_id: hex(9, 64) }), 'small', true);
}

/** The calls whose first use after a start is compared with later ones (a pod start's first two calls). */
export function startupCalls(): CallType[] {
  return [runPodSandboxCall(), createContainerCall()];
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
      'io.kubernetes.pod.uid': podUid(i + 3000),
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

function containers(count: number): Buffer {
  return encode('ListContainersResponse', { containers: Array.from({ length: count }, (_, i) => container(i)) });
}

/** Just over LIST_CONTAINERS_TARGET_BYTES of realistic containers. */
export function listContainersResponse(): Buffer {
  const one = containers(1).length;
  let count = Math.max(1, Math.floor(LIST_CONTAINERS_TARGET_BYTES / one));
  let encoded = containers(count);
  while (encoded.length < LIST_CONTAINERS_TARGET_BYTES) encoded = containers(++count);
  return encoded;
}

export function largeListContainersResponse(): Buffer {
  return containers(LARGE_LIST_CONTAINERS);
}

export function versionResponse(): Buffer {
  return encode('VersionResponse', { version: '0.1.0', runtime_name: 'fake-runtime', runtime_version: '1.0.0', runtime_api_version: 'v1' });
}

export function runPodSandboxResponse(): Buffer {
  return encode('RunPodSandboxResponse', { pod_sandbox_id: hex(7, 64) });
}

export function createContainerResponse(): Buffer {
  return encode('CreateContainerResponse', { container_id: hex(9, 64) });
}
