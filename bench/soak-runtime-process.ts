/**
 * Child-process entry: a fake runtime that keeps state, for the soak. Pods and containers are created, listed,
 * polled, stopped and removed as a runtime would do them (no processes, no network): enough for a kubelet-like
 * load whose answers grow and shrink with the node. Started by the soak with an IPC channel:
 * `node soak-runtime-process.js SOCKET`.
 */
import { randomBytes } from 'node:crypto';
import { FakeRuntime, type RecordedCall } from '../test/support/fake-runtime';
import { decode, encode } from './cri-messages';
import type { FakeReadyMessage } from './fake-runtime-process';

type Message = Record<string, unknown>;

interface Pod {
  readonly id: string;
  readonly metadata: unknown;
  readonly labels: unknown;
  readonly annotations: unknown;
  readonly createdAt: string;
  readonly ip: string;
  ready: boolean;
}

interface Container {
  readonly id: string;
  readonly podSandboxId: string;
  readonly metadata: unknown;
  readonly image: string;
  readonly labels: unknown;
  readonly annotations: unknown;
  readonly logPath: string;
  readonly createdAt: string;
  startedAt: string;
  finishedAt: string;
  state: 'CONTAINER_CREATED' | 'CONTAINER_RUNNING' | 'CONTAINER_EXITED';
}

const pods = new Map<string, Pod>();
const containers = new Map<string, Container>();
let podCount = 0;

const nowNs = (): string => (BigInt(Date.now()) * 1_000_000n).toString();
const newId = (): string => randomBytes(32).toString('hex');
const text = (value: unknown): string => (typeof value === 'string' ? value : '');
const obj = (value: unknown): Message => (typeof value === 'object' && value !== null ? (value as Message) : {});

function request(call: RecordedCall, type: string): Message {
  return decode(type, call.requestBytes);
}

function podOf(id: unknown): Pod {
  const pod = typeof id === 'string' ? pods.get(id) : undefined;
  if (pod === undefined) throw new Error(`pod sandbox ${String(id)} not found`);
  return pod;
}

function containerOf(id: unknown): Container {
  const container = typeof id === 'string' ? containers.get(id) : undefined;
  if (container === undefined) throw new Error(`container ${String(id)} not found`);
  return container;
}

function podView(pod: Pod): Message {
  return {
    id: pod.id,
    metadata: pod.metadata,
    state: pod.ready ? 'SANDBOX_READY' : 'SANDBOX_NOTREADY',
    created_at: pod.createdAt,
    labels: pod.labels,
    annotations: pod.annotations,
  };
}

function containerView(c: Container): Message {
  return {
    id: c.id,
    pod_sandbox_id: c.podSandboxId,
    metadata: c.metadata,
    image: { image: c.image },
    image_ref: c.image,
    state: c.state,
    created_at: c.createdAt,
    labels: c.labels,
    annotations: c.annotations,
  };
}

function stopContainer(c: Container): void {
  if (c.state === 'CONTAINER_EXITED') return;
  c.state = 'CONTAINER_EXITED';
  c.finishedAt = nowNs();
}

function usage(id: string, metadata: unknown): Message {
  const timestamp = nowNs();
  return {
    attributes: { id, metadata },
    cpu: { timestamp, usage_core_nano_seconds: { value: String(1_000_000 + (id.charCodeAt(0) % 97) * 1000) } },
    memory: { timestamp, working_set_bytes: { value: '8388608' } },
  };
}

const handlers: Readonly<Record<string, (call: RecordedCall) => Buffer>> = {
  Version: () =>
    encode('VersionResponse', { version: '0.1.0', runtime_name: 'soak-runtime', runtime_version: '1.0.0', runtime_api_version: 'v1' }),
  Status: () =>
    encode('StatusResponse', {
      status: {
        conditions: [
          { type: 'RuntimeReady', status: true },
          { type: 'NetworkReady', status: true },
        ],
      },
    }),
  RunPodSandbox: (call) => {
    const config = obj(request(call, 'RunPodSandboxRequest').config);
    podCount += 1;
    const pod: Pod = {
      id: newId(),
      metadata: config.metadata,
      labels: config.labels,
      annotations: config.annotations,
      createdAt: nowNs(),
      ip: `10.88.${(podCount >> 8) & 255}.${podCount & 255}`,
      ready: true,
    };
    pods.set(pod.id, pod);
    return encode('RunPodSandboxResponse', { pod_sandbox_id: pod.id });
  },
  StopPodSandbox: (call) => {
    const id = request(call, 'StopPodSandboxRequest').pod_sandbox_id;
    const pod = typeof id === 'string' ? pods.get(id) : undefined;
    if (pod !== undefined) {
      pod.ready = false;
      for (const c of containers.values()) if (c.podSandboxId === pod.id) stopContainer(c);
    }
    return Buffer.alloc(0);
  },
  RemovePodSandbox: (call) => {
    const id = request(call, 'RemovePodSandboxRequest').pod_sandbox_id;
    if (typeof id === 'string') {
      pods.delete(id);
      for (const c of [...containers.values()]) if (c.podSandboxId === id) containers.delete(c.id);
    }
    return Buffer.alloc(0);
  },
  PodSandboxStatus: (call) => {
    const pod = podOf(request(call, 'PodSandboxStatusRequest').pod_sandbox_id);
    return encode('PodSandboxStatusResponse', {
      status: {
        ...podView(pod),
        network: { ip: pod.ip },
        linux: { namespaces: { options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
      },
    });
  },
  ListPodSandbox: () => encode('ListPodSandboxResponse', { items: [...pods.values()].map(podView) }),
  CreateContainer: (call) => {
    const req = request(call, 'CreateContainerRequest');
    const pod = podOf(req.pod_sandbox_id);
    const config = obj(req.config);
    const container: Container = {
      id: newId(),
      podSandboxId: pod.id,
      metadata: config.metadata,
      image: text(obj(config.image).image),
      labels: config.labels,
      annotations: config.annotations,
      logPath: text(config.log_path),
      createdAt: nowNs(),
      startedAt: '0',
      finishedAt: '0',
      state: 'CONTAINER_CREATED',
    };
    containers.set(container.id, container);
    return encode('CreateContainerResponse', { container_id: container.id });
  },
  StartContainer: (call) => {
    const c = containerOf(request(call, 'StartContainerRequest').container_id);
    c.state = 'CONTAINER_RUNNING';
    c.startedAt = nowNs();
    return Buffer.alloc(0);
  },
  StopContainer: (call) => {
    const id = request(call, 'StopContainerRequest').container_id;
    const c = typeof id === 'string' ? containers.get(id) : undefined;
    if (c !== undefined) stopContainer(c);
    return Buffer.alloc(0);
  },
  RemoveContainer: (call) => {
    const id = request(call, 'RemoveContainerRequest').container_id;
    if (typeof id === 'string') containers.delete(id);
    return Buffer.alloc(0);
  },
  ContainerStatus: (call) => {
    const c = containerOf(request(call, 'ContainerStatusRequest').container_id);
    return encode('ContainerStatusResponse', {
      status: {
        ...containerView(c),
        started_at: c.startedAt,
        finished_at: c.finishedAt,
        exit_code: 0,
        log_path: c.logPath,
        reason: c.state === 'CONTAINER_EXITED' ? 'Completed' : '',
      },
    });
  },
  ListContainers: () => encode('ListContainersResponse', { containers: [...containers.values()].map(containerView) }),
  ListContainerStats: () =>
    encode('ListContainerStatsResponse', {
      stats: [...containers.values()].filter((c) => c.state === 'CONTAINER_RUNNING').map((c) => usage(c.id, c.metadata)),
    }),
  ListPodSandboxStats: () =>
    encode('ListPodSandboxStatsResponse', {
      stats: [...pods.values()].map((p) => {
        const { cpu, memory } = usage(p.id, p.metadata);
        return { attributes: { id: p.id, metadata: p.metadata, labels: p.labels }, linux: { cpu, memory } };
      }),
    }),
  ImageStatus: (call) => {
    const image = obj(request(call, 'ImageStatusRequest').image).image;
    return encode('ImageStatusResponse', { image: { id: `sha256:${'ab'.repeat(32)}`, repo_tags: [text(image)], size: '1048576' } });
  },
  PullImage: () => encode('PullImageResponse', { image_ref: `sha256:${'ab'.repeat(32)}` }),
  ImageFsInfo: () =>
    encode('ImageFsInfoResponse', {
      image_filesystems: [
        { timestamp: nowNs(), fs_id: { mountpoint: '/var/lib/soak' }, used_bytes: { value: '1048576' }, inodes_used: { value: '100' } },
      ],
    }),
};

async function main(): Promise<void> {
  const socketPath = process.argv[2];
  if (socketPath === undefined) throw new Error('usage: soak-runtime-process SOCKET');
  const fake = new FakeRuntime(socketPath);
  for (const [method, respond] of Object.entries(handlers)) fake.on(method, { respond });
  await fake.start();
  // The fake records every call for tests; over a soak that would grow without end.
  setInterval(() => {
    fake.calls.length = 0;
  }, 200).unref();
  const stop = (): void => {
    void fake.stop().finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('disconnect', stop);
  const ready: FakeReadyMessage = { type: 'ready', responseBytes: {} };
  process.send?.(ready);
}

main().catch((err: unknown) => {
  process.stderr.write(`soak runtime: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
