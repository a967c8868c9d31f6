/**
 * CRI calls made as kubelet makes them. A runtime may fail a call for reasons of its own on a busy machine
 * (containerd's `ttrpc: closed` when a shim connection drops, say); kubelet retries such a call on its next sync.
 * So does this, counting each: what a test must not forgive is a fault of the proxy. The rule reads what reached
 * the client: the proxy's own errors carry their code in the `cri-proxy-error` trailer; a status the client
 * library made up (a broken stream or connection) came with no trailers at all; any other status is the
 * runtime's, relayed unchanged.
 */
import type * as grpc from '@grpc/grpc-js';
import { PROXY_ERROR_TRAILER } from '../../../src/proxy/grpc-status';
import type { CriClient, CriMessage } from './cri-client';
import { sleep } from './processes';

export type FailureOrigin = 'proxy' | 'runtime' | 'no-status';

/** Where a failed call's status came from. */
export function failureOrigin(err: unknown): FailureOrigin {
  const metadata = (err as { metadata?: grpc.Metadata } | undefined)?.metadata;
  if (metadata === undefined) return 'no-status';
  if (metadata.get(PROXY_ERROR_TRAILER).length > 0) return 'proxy';
  // Trailers relayed from the runtime hold at least its content-type; grpc-js gives its own statuses none.
  return Object.keys(metadata.getMap()).length > 0 ? 'runtime' : 'no-status';
}

export interface RetriedError {
  readonly method: string;
  readonly code: number;
  readonly details: string;
}

/** The call failed in a way kubelet would not retry past: the proxy's own error, a broken call, or too many tries. */
export class CallFailed extends Error {
  constructor(
    readonly method: string,
    readonly origin: FailureOrigin | 'retries',
    readonly code: number | undefined,
    details: string,
  ) {
    super(`${method} failed (${origin}, code ${String(code)}): ${details}`);
  }
}

/** One call of a sequence: the method and its request for an attempt (0 first). */
export type Step = readonly [method: string, request: (attempt: number) => object];

export class KubeletCalls {
  /** The runtime's errors retried so far, in order. */
  readonly retried: RetriedError[] = [];

  constructor(
    private readonly client: CriClient,
    /** A sequence the runtime fails this many times in a row is not failing transiently. */
    private readonly maxAttempts = 8,
  ) {}

  /**
   * Calls `method` with `request(attempt)`, attempt counting from 0: creating calls put it in their metadata's
   * `attempt`, as kubelet does, so that a retry does not collide with what a failed try may have left.
   */
  async call(method: string, request: (attempt: number) => object): Promise<CriMessage> {
    const [response] = await this.calls([[method, request]]);
    if (response === undefined) throw new Error(`${method}: no response`);
    return response;
  }

  /**
   * Makes the calls in order; after a runtime error, all of them again from the first, as kubelet's next sync
   * does (a container that could not be removed is stopped again first). So each must be safe to repeat.
   */
  async calls(steps: readonly Step[]): Promise<CriMessage[]> {
    for (let attempt = 0; ; attempt++) {
      const responses: CriMessage[] = [];
      try {
        for (const [method, request] of steps) responses.push(await this.once(method, request(attempt)));
        return responses;
      } catch (err) {
        if (!(err instanceof RuntimeError)) throw err;
        this.retried.push(err.error);
        if (attempt + 1 >= this.maxAttempts) {
          throw new CallFailed(
            err.error.method,
            'retries',
            err.error.code,
            `${this.maxAttempts} tries, retried: ${JSON.stringify(this.retried)}`,
          );
        }
        // kubelet retries on a later sync, not at once: a runtime under load gets time to settle.
        await sleep(Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** attempt));
      }
    }
  }

  private async once(method: string, request: object): Promise<CriMessage> {
    try {
      return await this.client.call(method, request);
    } catch (err) {
      const { code, details } = err as { code?: number; details?: string };
      const origin = failureOrigin(err);
      if (origin !== 'runtime') throw new CallFailed(method, origin, code, details ?? String(err));
      throw new RuntimeError({ method, code: code ?? -1, details: details ?? '' });
    }
  }
}

const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 2000;

class RuntimeError extends Error {
  constructor(readonly error: RetriedError) {
    super(`${error.method}: ${error.details}`);
  }
}
