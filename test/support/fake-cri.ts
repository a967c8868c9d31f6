/**
 * A FakeRuntime scripted to act as a small CRI runtime: pods, containers and images held in memory, IDs of its
 * own, NOT_FOUND for what it does not hold, container events streamed to every subscriber. Enough to see
 * which of several runtimes a call reached, and what each one lists.
 */
import * as grpc from '@grpc/grpc-js';
import { decodeMessage, encodeMessage, type DecodedMessage } from '../../src/messages/codec';
import { methodTable } from '../../src/chain/method-table';
import { RuntimeFailure, type FakeRuntime, type RecordedCall } from './fake-runtime';

type Message = Record<string, unknown>;

interface Sandbox {
  readonly id: string;
  readonly config: DecodedMessage;
  readonly handler: string;
  state: 'SANDBOX_READY' | 'SANDBOX_NOTREADY';
}

interface Container {
  readonly id: string;
  readonly sandboxId: string;
  readonly config: DecodedMessage;
  state: 'CONTAINER_CREATED' | 'CONTAINER_RUNNING' | 'CONTAINER_EXITED';
}

const str = (m: DecodedMessage | undefined, key: string): string => {
  const v = m?.[key];
  return typeof v === 'string' ? v : '';
};
const sub = (m: DecodedMessage | undefined, key: string): DecodedMessage | undefined => {
  const v = m?.[key];
  return typeof v === 'object' && v !== null ? (v as DecodedMessage) : undefined;
};

/** `registry/name` of `registry/name:tag` (or of `…@digest`). */
const repositoryOf = (ref: string): string => {
  const at = ref.indexOf('@');
  const named = at === -1 ? ref : ref.slice(0, at);
  const colon = named.lastIndexOf(':');
  return colon > named.lastIndexOf('/') ? named.slice(0, colon) : named;
};

const requestTypes = new Map(methodTable.map((m) => [m.name, m.requestType ?? '']));
const responseTypes = new Map(methodTable.map((m) => [m.name, m.responseType ?? '']));

export class FakeCri {
  readonly sandboxes = new Map<string, Sandbox>();
  readonly containers = new Map<string, Container>();
  /** Image ID → its tags. */
  readonly images = new Map<string, string[]>();
  /** While set, pulls fail as they do when the registry cannot be reached. */
  registryDown = false;
  private next = 0;
  private readonly subscribers = new Set<(event: Buffer | undefined) => void>();

  /** `name` prefixes the IDs this runtime makes and shows in its answers (Version, ExecSync output, Status info). */
  constructor(
    readonly runtime: FakeRuntime,
    readonly name: string,
    readonly handlers: readonly string[] = [''],
  ) {
    this.script();
  }

  /** Subscribers of GetContainerEvents at the moment. */
  get eventSubscribers(): number {
    return this.subscribers.size;
  }

  /** Ends every open event stream (the runtime going away ends them anyway; this also frees their generators). */
  endEvents(): void {
    for (const deliver of [...this.subscribers]) deliver(undefined);
  }

  private id(kind: string): string {
    return `${this.name}-${kind}-${++this.next}`;
  }

  private sandbox(id: string): Sandbox {
    const found = this.sandboxes.get(id);
    if (found === undefined)
      throw new RuntimeFailure({ code: grpc.status.NOT_FOUND, message: `${this.name}: pod sandbox "${id}" not found` });
    return found;
  }

  private container(id: string): Container {
    const found = this.containers.get(id);
    if (found === undefined)
      throw new RuntimeFailure({ code: grpc.status.NOT_FOUND, message: `${this.name}: container "${id}" not found` });
    return found;
  }

  private emit(containerId: string, type: string, sandbox: Sandbox): void {
    const event = encodeMessage('runtime.v1.ContainerEventResponse', {
      container_id: containerId,
      container_event_type: type,
      pod_sandbox_status: { id: sandbox.id, metadata: sub(sandbox.config, 'metadata') },
    });
    for (const deliver of this.subscribers) deliver(event);
  }

  private podOf(s: Sandbox): Message {
    return { id: s.id, metadata: sub(s.config, 'metadata'), state: s.state, runtime_handler: s.handler, labels: sub(s.config, 'labels') };
  }

  private containerOf(c: Container): Message {
    return { id: c.id, pod_sandbox_id: c.sandboxId, metadata: sub(c.config, 'metadata'), image: sub(c.config, 'image'), state: c.state };
  }

  /** Each method answered by `answer` (request decoded, response encoded with the method's types). */
  private on(method: string, answer: (request: DecodedMessage, call: RecordedCall) => Message): void {
    const requestType = requestTypes.get(method) ?? '';
    const responseType = responseTypes.get(method) ?? '';
    this.runtime.on(method, {
      respond: (call) => encodeMessage(responseType, answer(decodeMessage(requestType, call.requestBytes), call)),
    });
  }

  private script(): void {
    const bySandbox = (r: DecodedMessage): Message => (this.sandbox(str(r, 'pod_sandbox_id')), {});
    const byContainer = (r: DecodedMessage): Message => (this.container(str(r, 'container_id')), {});
    this.on('Version', () => ({ version: '0.1.0', runtime_name: `fake-${this.name}`, runtime_version: '1.0', runtime_api_version: 'v1' }));
    this.on('Status', () => ({
      status: {
        conditions: [
          { type: 'RuntimeReady', status: true },
          { type: 'NetworkReady', status: true },
        ],
      },
      runtime_handlers: this.handlers.map((name) => ({ name })),
      info: { name: this.name },
    }));
    this.on('RunPodSandbox', (r) => {
      const sandbox: Sandbox = {
        id: this.id('pod'),
        config: sub(r, 'config') ?? {},
        handler: str(r, 'runtime_handler'),
        state: 'SANDBOX_READY',
      };
      this.sandboxes.set(sandbox.id, sandbox);
      this.emit(sandbox.id, 'CONTAINER_STARTED_EVENT', sandbox);
      return { pod_sandbox_id: sandbox.id };
    });
    this.on('StopPodSandbox', (r) => {
      this.sandbox(str(r, 'pod_sandbox_id')).state = 'SANDBOX_NOTREADY';
      return {};
    });
    this.on('RemovePodSandbox', (r) => {
      const id = str(r, 'pod_sandbox_id');
      this.sandboxes.delete(id);
      for (const c of [...this.containers.values()]) if (c.sandboxId === id) this.containers.delete(c.id);
      return {};
    });
    this.on('PodSandboxStatus', (r) => ({ status: this.podOf(this.sandbox(str(r, 'pod_sandbox_id'))) }));
    for (const method of ['UpdatePodSandboxResources', 'PortForward', 'PodSandboxStats', 'CheckpointPod']) this.on(method, bySandbox);
    this.on('CreateContainer', (r) => {
      const sandbox = this.sandbox(str(r, 'pod_sandbox_id'));
      // As CRI-O says it: a runtime creates containers only from images it holds (tests that leave the image out
      // do not care which).
      const config = sub(r, 'config');
      const mounts = Array.isArray(config?.['mounts']) ? (config['mounts'] as DecodedMessage[]) : [];
      for (const image of [str(sub(config, 'image'), 'image'), ...mounts.map((m) => str(sub(m, 'image'), 'image'))]) {
        if (image !== '' && this.imageId(image) === undefined)
          throw new RuntimeFailure({ code: grpc.status.NOT_FOUND, message: `${this.name}: image not known: ${image}` });
      }
      const container: Container = {
        id: this.id('ctr'),
        sandboxId: sandbox.id,
        config: sub(r, 'config') ?? {},
        state: 'CONTAINER_CREATED',
      };
      this.containers.set(container.id, container);
      this.emit(container.id, 'CONTAINER_CREATED_EVENT', sandbox);
      return { container_id: container.id };
    });
    this.on('StartContainer', (r) => {
      const container = this.container(str(r, 'container_id'));
      container.state = 'CONTAINER_RUNNING';
      this.emit(container.id, 'CONTAINER_STARTED_EVENT', this.sandbox(container.sandboxId));
      return {};
    });
    this.on('StopContainer', (r) => {
      this.container(str(r, 'container_id')).state = 'CONTAINER_EXITED';
      return {};
    });
    this.on('RemoveContainer', (r) => {
      const container = this.container(str(r, 'container_id'));
      this.containers.delete(container.id);
      this.emit(container.id, 'CONTAINER_DELETED_EVENT', this.sandbox(container.sandboxId));
      return {};
    });
    this.on('ContainerStatus', (r) => ({ status: this.containerOf(this.container(str(r, 'container_id'))) }));
    this.on('ExecSync', (r) => ({ stdout: Buffer.from(`${this.name}:${this.container(str(r, 'container_id')).id}`), exit_code: 0 }));
    this.on('Exec', (r) => ({ url: `http://${this.name}.invalid/exec/${this.container(str(r, 'container_id')).id}` }));
    this.on('Attach', (r) => ({ url: `http://${this.name}.invalid/attach/${this.container(str(r, 'container_id')).id}` }));
    this.on('ContainerStats', (r) => ({ stats: { attributes: { id: this.container(str(r, 'container_id')).id } } }));
    for (const method of ['UpdateContainerResources', 'ReopenContainerLog', 'CheckpointContainer']) this.on(method, byContainer);
    this.on('ListPodSandbox', (r) => ({ items: this.podsMatching(sub(r, 'filter')) }));
    this.on('ListContainers', (r) => ({ containers: this.containersMatching(sub(r, 'filter')) }));
    this.on('ListContainerStats', (r) => ({
      stats: this.containersMatching(sub(r, 'filter')).map((c) => ({ attributes: { id: c['id'] } })),
    }));
    this.on('ListPodSandboxStats', () => ({ stats: [...this.sandboxes.values()].map((s) => ({ attributes: { id: s.id } })) }));
    this.on('ListMetricDescriptors', () => ({
      descriptors: [{ name: 'container_cpu_usage_seconds_total' }, { name: `${this.name}_only` }],
    }));
    this.on('ListPodSandboxMetrics', () => ({ pod_metrics: [...this.sandboxes.values()].map((s) => ({ pod_sandbox_id: s.id })) }));
    this.runtime.on('StreamContainers', {
      stream: (call) =>
        this.containersMatching(sub(decodeMessage('runtime.v1.StreamContainersRequest', call.requestBytes), 'filter')).map((c) =>
          encodeMessage('runtime.v1.StreamContainersResponse', { containers: [c] }),
        ),
    });
    this.on('ListImages', () => ({ images: [...this.images].map(([id, tags]) => ({ id, repo_tags: tags })) }));
    this.on('ImageStatus', (r) => {
      const id = this.imageId(str(sub(r, 'image'), 'image'));
      if (id === undefined) return {};
      const tags = this.images.get(id) ?? [];
      return { image: { id, repo_tags: tags, repo_digests: [...new Set(tags.map((t) => `${repositoryOf(t)}@${id}`))], size: 4096 } };
    });
    this.on('PullImage', (r) => {
      const ref = str(sub(r, 'image'), 'image');
      if (this.registryDown) throw new RuntimeFailure({ code: grpc.status.UNAVAILABLE, message: `${ref}: no route to host` });
      // The image's ID follows from what was pulled, as content from a registry would; a digest names it outright.
      const at = ref.indexOf('@');
      const id = at === -1 ? `sha256:${Buffer.from(ref).toString('hex').padEnd(64, '0').slice(0, 64)}` : ref.slice(at + 1);
      this.images.set(id, [...new Set([...(this.images.get(id) ?? []), ref])]);
      return { image_ref: id };
    });
    this.on('RemoveImage', (r) => {
      const ref = str(sub(r, 'image'), 'image');
      for (const [id, tags] of this.images) if (id === ref || tags.includes(ref)) this.images.delete(id);
      return {};
    });
    this.on('ImageFsInfo', () => ({ image_filesystems: [{ fs_id: { mountpoint: `/var/lib/${this.name}` } }] }));
    this.runtime.on('GetContainerEvents', { stream: () => this.events() });
  }

  /** The ID of the image `ref` (an ID or a tag) names, if this runtime holds it. */
  imageId(ref: string): string | undefined {
    return [...this.images].find(([id, tags]) => id === ref || tags.includes(ref))?.[0];
  }

  private podsMatching(filter: DecodedMessage | undefined): Message[] {
    const id = str(filter, 'id');
    return [...this.sandboxes.values()].filter((s) => id === '' || s.id === id).map((s) => this.podOf(s));
  }

  private containersMatching(filter: DecodedMessage | undefined): Message[] {
    const id = str(filter, 'id');
    const sandbox = str(filter, 'pod_sandbox_id');
    return [...this.containers.values()]
      .filter((c) => (id === '' || c.id === id) && (sandbox === '' || c.sandboxId === sandbox))
      .map((c) => this.containerOf(c));
  }

  /** One subscriber's events, until endEvents(). */
  private async *events(): AsyncGenerator<Buffer> {
    const queue: (Buffer | undefined)[] = [];
    let wake: (() => void) | undefined;
    const deliver = (event: Buffer | undefined): void => {
      queue.push(event);
      wake?.();
    };
    this.subscribers.add(deliver);
    try {
      for (;;) {
        if (queue.length === 0) await new Promise<void>((resolve) => (wake = resolve));
        const event = queue.shift();
        if (event === undefined) return;
        yield event;
      }
    } finally {
      this.subscribers.delete(deliver);
    }
  }
}
