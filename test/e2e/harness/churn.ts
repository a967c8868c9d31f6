/**
 * Concurrent pod churn for the fault tests: each worker starts a pod (sandbox, container, start), stops and
 * removes it, and again, until stopped; every call is recorded with its times and outcome. A failed step is
 * followed by a best-effort cleanup of that pod and a short pause, so that an outage does not spin the workers.
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createCriClient, type CriClient, type CriMessage } from './cri-client';
import { sleep } from './processes';

export interface CallRecord {
  readonly method: string;
  /** performance.now() at the call's start and end, in the test process. */
  readonly startedAt: number;
  readonly endedAt: number;
  readonly deadlineMs: number;
  /** gRPC status code; 0 for OK. */
  readonly code: number;
  readonly details: string;
  /** The pod sandbox or container the call was about (from the request, or the response of a create). */
  readonly id: string | undefined;
}

export interface ChurnOptions {
  readonly workers: number;
  /** Pod names are `<prefix>-<worker>-<n>`. */
  readonly prefix: string;
  readonly image: string;
  readonly podLogDir: string;
  /** Each call's deadline. */
  readonly deadlineMs: number;
}

export interface Churn {
  readonly calls: readonly CallRecord[];
  /** Pods that went through their whole life without a failed call. */
  readonly completed: number;
  /** Stops starting new pods; resolves once every worker has finished the pod it was on. */
  stop(): Promise<void>;
}

const PAUSE_AFTER_FAILURE_MS = 50;

/** A call through `client`, recorded in `calls`: resolves to the response, or undefined if it failed. */
export async function recordedCall(
  client: CriClient,
  calls: CallRecord[],
  method: string,
  request: Record<string, unknown>,
  deadlineMs: number,
  idOf: (response: CriMessage) => unknown = () => undefined,
): Promise<CriMessage | undefined> {
  const requestId = request.pod_sandbox_id ?? request.container_id;
  const startedAt = performance.now();
  try {
    const response = await client.call(method, request, { timeoutMs: deadlineMs });
    const id = idOf(response) ?? requestId;
    calls.push({
      method,
      startedAt,
      endedAt: performance.now(),
      deadlineMs,
      code: 0,
      details: '',
      id: typeof id === 'string' ? id : undefined,
    });
    return response;
  } catch (err) {
    const { code, details } = err as { code?: number; details?: string };
    calls.push({
      method,
      startedAt,
      endedAt: performance.now(),
      deadlineMs,
      code: typeof code === 'number' ? code : -1,
      details: details ?? String(err),
      id: typeof requestId === 'string' ? requestId : undefined,
    });
    return undefined;
  }
}

export function startChurn(client: CriClient, options: ChurnOptions): Churn {
  const calls: CallRecord[] = [];
  let stopping = false;
  let completed = 0;
  const call = (method: string, request: Record<string, unknown>, idOf?: (r: CriMessage) => unknown): Promise<CriMessage | undefined> =>
    recordedCall(client, calls, method, request, options.deadlineMs, idOf);

  const onePod = async (name: string): Promise<boolean> => {
    const config = {
      metadata: { name, namespace: 'faults', uid: `${name}-uid`, attempt: 0 },
      log_directory: join(options.podLogDir, name),
      linux: {},
    };
    const sandbox = await call('RunPodSandbox', { config }, (r) => r.pod_sandbox_id);
    const podId = sandbox?.pod_sandbox_id;
    if (typeof podId !== 'string') return false;
    let ok = true;
    const container = await call(
      'CreateContainer',
      {
        pod_sandbox_id: podId,
        sandbox_config: config,
        config: {
          metadata: { name: 'c', attempt: 0 },
          image: { image: options.image },
          command: ['sleep', '3600'],
          log_path: 'c.log',
          linux: {},
        },
      },
      (r) => r.container_id,
    );
    const containerId = container?.container_id;
    if (typeof containerId === 'string') {
      ok = (await call('StartContainer', { container_id: containerId })) !== undefined && ok;
      ok = (await call('StopContainer', { container_id: containerId, timeout: 1 })) !== undefined && ok;
      ok = (await call('RemoveContainer', { container_id: containerId })) !== undefined && ok;
    } else {
      ok = false;
    }
    ok = (await call('StopPodSandbox', { pod_sandbox_id: podId })) !== undefined && ok;
    ok = (await call('RemovePodSandbox', { pod_sandbox_id: podId })) !== undefined && ok;
    return ok;
  };

  const worker = async (w: number): Promise<void> => {
    for (let n = 0; !stopping; n++) {
      if (await onePod(`${options.prefix}-${w}-${n}`)) completed += 1;
      else await sleep(PAUSE_AFTER_FAILURE_MS);
    }
  };
  const workers = Array.from({ length: options.workers }, (_, w) => worker(w));
  return {
    calls,
    get completed() {
      return completed;
    },
    async stop() {
      stopping = true;
      await Promise.all(workers);
    },
  };
}

/**
 * Stops and removes every pod sandbox the runtime at `socket` has (what a churn cut short by a fault left
 * behind), on a connection of its own; best effort, the environment's teardown removes whatever is left.
 */
export async function removeAllPods(socket: string): Promise<void> {
  const direct = createCriClient(socket);
  try {
    const { items } = (await direct.call('ListPodSandbox', {})) as { items?: { id?: string }[] };
    for (const pod of items ?? []) {
      if (typeof pod.id !== 'string') continue;
      await direct.call('StopPodSandbox', { pod_sandbox_id: pod.id }).catch(() => undefined);
      await direct.call('RemovePodSandbox', { pod_sandbox_id: pod.id }).catch(() => undefined);
    }
  } finally {
    direct.close();
  }
}
