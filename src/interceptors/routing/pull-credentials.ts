/**
 * The registry credentials kubelet last sent with a pull that worked, per image repository, so that routing can
 * pull that image onto another runtime for kubelet (image-flow.ts). Held in memory only and bounded; kept as the
 * bytes kubelet sent (an `AuthConfig` message), handed to nothing but the pull, zeroed when dropped, and never
 * shown: not in logs, audit records, metrics or an inspected object.
 */
import { inspect } from 'node:util';
import { LRUCache } from 'lru-cache';
import { parseImageReference } from '../../policies/image-reference';
import { messageAt, WireFormatError } from '../../messages/protobuf-wire';

/** PullImageRequest.auth */
const AUTH_FIELD = 2;

/** The repository an image reference names (`registry/path`), the key credentials are kept under. */
function repositoryOf(image: string): string | undefined {
  const parsed = parseImageReference(image);
  return parsed.ok ? `${parsed.ref.registry}/${parsed.ref.repository}` : undefined;
}

export class PullCredentials {
  private readonly byRepository: LRUCache<string, Buffer> | undefined;

  /** `size` repositories at most; 0 keeps none. */
  constructor(size: number) {
    this.byRepository = size === 0 ? undefined : new LRUCache<string, Buffer>({ max: size, dispose: (auth) => auth.fill(0) });
  }

  /**
   * After kubelet's pull of `image` worked: its credentials (from the PullImageRequest's bytes) are the ones to
   * use for that repository; a pull that needed none forgets any kept.
   */
  learn(image: string, pullRequest: Buffer): void {
    const repository = this.byRepository === undefined ? undefined : repositoryOf(image);
    if (repository === undefined) return;
    let auth: Buffer | undefined;
    try {
      auth = messageAt(pullRequest, [AUTH_FIELD]);
    } catch (err) {
      if (err instanceof WireFormatError) return;
      throw err;
    }
    // A copy: the request's buffer is not ours to zero, nor to keep alive.
    if (auth !== undefined && auth.length > 0) this.byRepository?.set(repository, Buffer.from(auth));
    else this.byRepository?.delete(repository);
  }

  /** The `AuthConfig` bytes to pull `image` with, if kubelet sent some for its repository. */
  for(image: string): Buffer | undefined {
    const repository = this.byRepository === undefined ? undefined : repositoryOf(image);
    return repository === undefined ? undefined : this.byRepository?.get(repository);
  }

  /** Repositories with credentials kept. */
  get size(): number {
    return this.byRepository?.size ?? 0;
  }

  [inspect.custom](): string {
    return `PullCredentials { ${this.size} repositories, [redacted] }`;
  }

  toJSON(): string {
    return '[redacted]';
  }
}
