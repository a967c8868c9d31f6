import { createHash } from 'node:crypto';
import { setTimeout as pause } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { decodeMessage, encodeMessage } from '../../src/messages/codec';
import type { FakeRuntime, Failure } from './fake-runtime';
import type { RawClient } from './proxy-harness';

/*
 * The CRI calls kubelet makes to start a pod, sent through the proxy to a fake runtime that answers each after
 * the time the spec gives it: a pod start of a known shape, for tests of what the proxy makes of it.
 */

const RUNTIME = '/runtime.v1.RuntimeService/';
const OK: number = grpc.status.OK;
const IMAGE = '/runtime.v1.ImageService/';

/** Never to be shown by anything that reports pod starts: environment, args, labels, annotations, pull credentials. */
export const SECRET_SENTINEL = 'S3NT1NEL-do-not-show-8f2b';

export interface ContainerSpec {
  readonly name: string;
  readonly image: string;
  /** The pull's time; no pull when absent (the image is on the node). */
  readonly pullMs?: number;
  /** The size the runtime reports for the pulled image. */
  readonly pullBytes?: number;
  readonly failPull?: Failure;
  readonly createMs?: number;
  readonly startMs?: number;
  readonly failStart?: Failure;
}

export interface PodSpec {
  readonly uid: string;
  readonly name: string;
  readonly namespace: string;
  readonly handler?: string;
  readonly sandboxMs?: number;
  readonly failSandbox?: Failure;
  /** kubelet's own time before each container (volumes, image checks). */
  readonly kubeletMs?: number;
  readonly containers: readonly ContainerSpec[];
  /** Runs before each StartContainer (a reload meanwhile, say). */
  readonly beforeStart?: () => Promise<void>;
}

const imageId = (image: string): string => `sha256:${createHash('sha256').update(image).digest('hex')}`;

function sandboxConfig(pod: PodSpec): Record<string, unknown> {
  return {
    metadata: { name: pod.name, namespace: pod.namespace, uid: pod.uid, attempt: 0 },
    hostname: pod.name,
    log_directory: `/var/log/pods/${pod.namespace}_${pod.name}_${pod.uid}`,
    labels: { app: pod.name, secret: SECRET_SENTINEL },
    annotations: { 'example.com/token': SECRET_SENTINEL },
  };
}

async function call(client: RawClient, path: string, type: string, body: Record<string, unknown>): Promise<number> {
  return (await client.unary(path, encodeMessage(`runtime.v1.${type}`, body))).status.code;
}

/** Starts `pod` as kubelet would; resolves with the status of the call that ended the start. */
export async function startPod(client: RawClient, runtime: FakeRuntime, pod: PodSpec): Promise<number> {
  const sandboxId = `sb-${pod.uid}`;
  const config = sandboxConfig(pod);
  runtime.on('RunPodSandbox', {
    delayMs: pod.sandboxMs ?? 0,
    ...(pod.failSandbox
      ? { fail: pod.failSandbox }
      : { respond: encodeMessage('runtime.v1.RunPodSandboxResponse', { pod_sandbox_id: sandboxId }) }),
  });
  const ran = await call(client, `${RUNTIME}RunPodSandbox`, 'RunPodSandboxRequest', { config, runtime_handler: pod.handler ?? '' });
  if (ran !== OK) return ran;
  let last = OK;
  for (const c of pod.containers) {
    if (pod.kubeletMs !== undefined) await pause(pod.kubeletMs);
    const present = c.pullMs === undefined;
    runtime.on('ImageStatus', {
      respond: encodeMessage(
        'runtime.v1.ImageStatusResponse',
        present ? { image: { id: imageId(c.image), repo_tags: [c.image], size: '1000' } } : {},
      ),
    });
    await call(client, `${IMAGE}ImageStatus`, 'ImageStatusRequest', { image: { image: c.image } });
    if (!present) {
      runtime.on('PullImage', {
        delayMs: c.pullMs,
        ...(c.failPull
          ? { fail: c.failPull }
          : { respond: encodeMessage('runtime.v1.PullImageResponse', { image_ref: imageId(c.image) }) }),
      });
      const pulled = await call(client, `${IMAGE}PullImage`, 'PullImageRequest', {
        image: { image: c.image },
        auth: { username: 'robot', password: SECRET_SENTINEL },
        sandbox_config: config,
      });
      if (pulled !== OK) return pulled;
      runtime.on('ImageStatus', {
        respond: encodeMessage('runtime.v1.ImageStatusResponse', {
          image: { id: imageId(c.image), repo_tags: [c.image], size: String(c.pullBytes ?? 0) },
        }),
      });
      await call(client, `${IMAGE}ImageStatus`, 'ImageStatusRequest', { image: { image: c.image } });
    }
    runtime.on('CreateContainer', {
      delayMs: c.createMs ?? 0,
      respond: (recorded) => {
        const request = decodeMessage('runtime.v1.CreateContainerRequest', recorded.requestBytes) as {
          config?: { metadata?: { name?: string } };
        };
        return encodeMessage('runtime.v1.CreateContainerResponse', {
          container_id: `${sandboxId}-${request.config?.metadata?.name ?? ''}`,
        });
      },
    });
    await call(client, `${RUNTIME}CreateContainer`, 'CreateContainerRequest', {
      pod_sandbox_id: sandboxId,
      config: {
        metadata: { name: c.name, attempt: 0 },
        image: { image: imageId(c.image), user_specified_image: c.image },
        command: ['/bin/app', `--token=${SECRET_SENTINEL}`],
        args: [SECRET_SENTINEL],
        envs: [{ key: 'PASSWORD', value: Buffer.from(SECRET_SENTINEL) }],
        labels: { secret: SECRET_SENTINEL },
        annotations: { 'example.com/token': SECRET_SENTINEL },
        log_path: `${c.name}/0.log`,
      },
      sandbox_config: config,
    });
    await pod.beforeStart?.();
    runtime.on('StartContainer', { delayMs: c.startMs ?? 0, ...(c.failStart ? { fail: c.failStart } : {}) });
    last = await call(client, `${RUNTIME}StartContainer`, 'StartContainerRequest', { container_id: `${sandboxId}-${c.name}` });
  }
  return last;
}
