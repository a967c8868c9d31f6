/**
 * A verified pull of a tag: the tag was resolved and its digest verified before the pull went to the runtime, but
 * the tag may have moved in between. After the pull, the runtime's record of the pulled image (`ImageStatus` repo
 * digests) must hold the verified digest; otherwise the pull is refused and the image it brought is removed, unless
 * it was on the node before.
 */
import { GrpcStatus, ProxyError, errorMessage } from '../../errors';
import type { Logger } from '../../log';
import { classifyImage, parseImageReference } from '../../policies/image-reference';
import { callRuntimeTyped, type Backend } from '../../chain/backends';
import type { CallContext, Next } from '../../chain/types';
import type { DecodedMessage } from '../../messages/codec';
import { isRecord } from '../../values';
import { type ImageNameResolver } from './image-names';
import type { Credentials } from '../../provenance/registry/auth';
import { credentialsOf } from '../../provenance/registry/auth';
import { repositoryDigests } from './verification';

export const REMOVE_IMAGE = {
  path: '/runtime.v1.ImageService/RemoveImage',
  requestType: 'runtime.v1.RemoveImageRequest',
  responseType: 'runtime.v1.RemoveImageResponse',
} as const;

/** What the runtime must have pulled: the name asked for and the digest verified for it. */
export interface PullPin {
  readonly name: string;
  readonly registry: string;
  readonly repository: string;
  readonly digest: string;
}

export interface PullConfirmationDeps {
  readonly upstream: Backend;
  readonly resolver: ImageNameResolver;
  readonly timeoutMs: number;
  readonly log: Logger;
  /** How denials name the policy. */
  readonly label: string;
}

/** The credentials kubelet sent with a pull (`auth`), for that pull's registry lookups only. */
export function pullCredentials(request: DecodedMessage | undefined, registry: string): Credentials | undefined {
  const auth = request?.['auth'];
  if (!isRecord(auth)) return undefined;
  const server = typeof auth['server_address'] === 'string' ? auth['server_address'] : '';
  if (server !== '') {
    const parsed = parseImageReference(`${server.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '')}/x`);
    if (parsed.ok && parsed.ref.registry.toLowerCase() !== registry.toLowerCase()) return undefined;
  }
  try {
    return credentialsOf(auth);
  } catch {
    return undefined;
  }
}

/**
 * Forwards the pull (`next`), then checks the runtime pulled `pin.digest`. The image the name denoted before the
 * pull is looked up first, so an image that was already on the node is never removed.
 */
export async function forwardConfirmedPull(ctx: CallContext, next: Next, pin: PullPin, deps: PullConfirmationDeps): Promise<void> {
  const { upstream, resolver } = deps;
  let before: string;
  try {
    before = (await resolver.fresh(upstream, pin.name, ctx.deadline)).id;
  } catch {
    // Unknown: then nothing the pull brings is removed, only refused.
    before = 'unknown';
  }
  await next();
  const ref = ctx.response()?.['image_ref'];
  const pulled = typeof ref === 'string' ? ref : '';
  let names: readonly string[];
  try {
    names = pulled === '' ? [] : (await resolver.fresh(upstream, pulled, ctx.deadline)).names;
  } catch (err) {
    throw new ProxyError(
      'POLICY_UNDECIDABLE',
      `image "${pin.name}" was pulled but cannot be confirmed (${deps.label}): ${errorMessage(err)}`,
    );
  }
  const digests = repositoryDigests(names, pin);
  if (digests.includes(pin.digest)) return;
  const removed = await removeIfNew(pulled, before, names, pin, deps);
  const found = digests.length > 0 ? digests.join(', ') : 'another image';
  throw new ProxyError(
    'IMAGE_CHANGED_DURING_PULL',
    `image "${pin.name}" changed while it was pulled (${deps.label}): ${pin.digest} was verified, the runtime pulled ${found}` +
      (removed ? '; the pulled image was removed' : ''),
  );
}

/**
 * Removes what the pull brought, when it is new: not the image the name denoted before, and known by no name
 * outside the pulled repository (an image other names held was on the node already).
 */
async function removeIfNew(
  pulled: string,
  before: string,
  names: readonly string[],
  pin: PullPin,
  deps: PullConfirmationDeps,
): Promise<boolean> {
  if (pulled === '' || pulled === before || before === 'unknown') return false;
  const own = `${pin.registry}/${pin.repository}`;
  const foreign = names.some((name) => {
    const spec = classifyImage(name);
    return spec.kind !== 'reference' || `${spec.ref.registry}/${spec.ref.repository}` !== own;
  });
  if (foreign) return false;
  try {
    const reply = await callRuntimeTyped(deps.upstream, REMOVE_IMAGE, { image: { image: pulled } }, deps.timeoutMs);
    if (reply.code === GrpcStatus.OK) return true;
    deps.log.warn('an image pulled under a moved tag could not be removed', { image: pulled, code: reply.code, message: reply.message });
  } catch (err) {
    deps.log.warn('an image pulled under a moved tag could not be removed', { image: pulled, error: errorMessage(err) });
  }
  return false;
}
