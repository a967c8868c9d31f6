/** The names (tags and digests) an image ID has on the node, asked of the runtime and cached. */
import { LRUCache } from 'lru-cache';
import { GrpcStatus, ProxyError } from '../../errors';
import { warmCodec, type DecodedMessage } from '../../messages/codec';
import { callRuntimeTyped, type Backend } from '../../chain/backends';

export const IMAGE_STATUS = {
  path: '/runtime.v1.ImageService/ImageStatus',
  requestType: 'runtime.v1.ImageStatusRequest',
  responseType: 'runtime.v1.ImageStatusResponse',
} as const;

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string' && v !== '') : [];
}

function idOf(response: DecodedMessage | undefined): string {
  const image = response?.image;
  const id = typeof image === 'object' && image !== null ? (image as Record<string, unknown>).id : undefined;
  return typeof id === 'string' ? id : '';
}

/** Tags first, then digests: a denial then names the tag the user most likely knows. */
export function namesOf(response: DecodedMessage | undefined): string[] {
  const image = response?.image;
  if (typeof image !== 'object' || image === null) return [];
  const { repo_tags: tags, repo_digests: digests } = image as Record<string, unknown>;
  return [...strings(tags), ...strings(digests)];
}

/**
 * Only names are cached, never decisions, so a policy change applies at once. An image ID denotes fixed
 * content, so a name it once had still vouches for that content; images with no names are not cached,
 * as a later pull may name them.
 */
export class ImageNameResolver {
  private readonly cache: LRUCache<string, readonly string[]>;
  private readonly inFlight = new Map<string, Promise<readonly string[]>>();

  constructor(
    cacheSize: number,
    private readonly timeoutMs: number,
  ) {
    this.cache = new LRUCache({ max: cacheSize });
  }

  /** Builds the lookup's codec before the first call needs it. */
  warmUp(): void {
    warmCodec([IMAGE_STATUS.requestType, IMAGE_STATUS.responseType]);
  }

  /** The image ID's names asked again (it may have gained some since they were cached), and cached anew. */
  refresh(upstream: Backend, id: string, deadline: number | undefined): Promise<readonly string[]> {
    return this.lookup(upstream, id, deadline);
  }

  /** The image's names, asked again every time (for a name, whose image may change); [] if unknown. */
  async fresh(
    upstream: Backend,
    image: string,
    deadline: number | undefined,
  ): Promise<{ readonly id: string; readonly names: readonly string[] }> {
    const reply = await this.status(upstream, image, deadline);
    return reply === undefined ? { id: '', names: [] } : { id: idOf(reply), names: namesOf(reply) };
  }

  /** The image's names ([] if the runtime does not know it); throws when the runtime cannot be asked. */
  names(upstream: Backend, id: string, deadline: number | undefined): Promise<readonly string[]> {
    const key = `${upstream.name}\n${id}`;
    const cached = this.cache.get(key);
    if (cached !== undefined) return Promise.resolve(cached);
    let pending = this.inFlight.get(key);
    if (pending === undefined) {
      pending = this.lookup(upstream, id, deadline).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, pending);
    }
    return pending;
  }

  private async lookup(upstream: Backend, id: string, deadline: number | undefined): Promise<readonly string[]> {
    const names = namesOf(await this.status(upstream, id, deadline));
    if (names.length > 0) this.cache.set(`${upstream.name}\n${id}`, names);
    return names;
  }

  /** The runtime's ImageStatus answer; undefined when it does not know the image. */
  private async status(upstream: Backend, image: string, deadline: number | undefined): Promise<DecodedMessage | undefined> {
    // Leave the call its own deadline rather than spending all of it here.
    const left = deadline === undefined ? this.timeoutMs : Math.min(this.timeoutMs, deadline - Date.now());
    if (left <= 0) throw new ProxyError('DEADLINE_EXCEEDED', 'no time left to look the image up');
    const reply = await callRuntimeTyped(upstream, IMAGE_STATUS, { image: { image } }, left);
    if (reply.code === GrpcStatus.NOT_FOUND) return undefined;
    if (reply.code !== GrpcStatus.OK) throw new Error(`status ${reply.code}: ${reply.message}`);
    return reply.response;
  }
}
