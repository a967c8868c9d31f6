/**
 * ImageStatus and RemoveImage when the request names no runtime handler: the image lives on whichever backends
 * pulled it, so they are asked. The answer given is a backend's own (bytes, status and trailers).
 */
import { GrpcStatus, ProxyError } from '../../errors';
import { wireFields, WireFormatError } from '../../messages/protobuf-wire';
import type { NamedReply } from './backend-call';
import { callEvery, failuresOf, fanOutFailure, type BackendFailure, type FanOutCall, type RoutedAnswer } from './fan-out';

const IMAGE_STATUS = '/runtime.v1.ImageService/ImageStatus';
const REMOVE_IMAGE = '/runtime.v1.ImageService/RemoveImage';
/** ImageStatusResponse.image: set only when the runtime has the image. */
const IMAGE_FIELD = 1;

function hasImage({ backend, reply }: NamedReply): boolean {
  if (reply.code !== GrpcStatus.OK || reply.body === undefined) return false;
  try {
    return wireFields(reply.body).some((f) => f.number === IMAGE_FIELD);
  } catch (err) {
    if (!(err instanceof WireFormatError)) throw err;
    throw new ProxyError('UPSTREAM_PROTOCOL', `backend "${backend}" sent a malformed ImageStatusResponse: ${err.message}`, { cause: err });
  }
}

/** Asks every backend; a backend that could not answer might hold the image, so then nothing can be concluded. */
async function holders(c: FanOutCall, request: Buffer): Promise<{ found: NamedReply[]; failed: BackendFailure[]; replies: NamedReply[] }> {
  const replies = await callEvery(c, c.backends, IMAGE_STATUS, request);
  return { found: replies.filter(hasImage), failed: failuresOf(replies), replies };
}

/** ImageStatus: the first backend (default first) that has the image answers; if none has it, the default does. */
export async function imageStatusAcross(c: FanOutCall, request: Buffer): Promise<RoutedAnswer> {
  const { found, failed, replies } = await holders(c, request);
  const [first] = found;
  if (first !== undefined) return { from: 'backend', ...first };
  if (failed.length > 0) return { from: 'proxy', answer: fanOutFailure('ImageStatus', failed) };
  return { from: 'backend', ...(replies[0] as NamedReply) };
}

/**
 * RemoveImage: removed from every backend that has it, answered by the first of them; when none has it, the
 * default backend answers (RemoveImage of an absent image is OK in CRI).
 */
export async function removeImageAcross(c: FanOutCall, request: Buffer): Promise<RoutedAnswer> {
  // RemoveImageRequest and ImageStatusRequest both carry the ImageSpec as field 1: the bytes serve for both.
  const { found, failed } = await holders(c, request);
  if (failed.length > 0) return { from: 'proxy', answer: fanOutFailure('RemoveImage', failed) };
  const targets = found.length > 0 ? found.map((h) => h.backend) : c.backends.slice(0, 1);
  const removed = await callEvery(c, targets, REMOVE_IMAGE, request);
  const removeFailures = failuresOf(removed);
  if (removeFailures.length > 0) return { from: 'proxy', answer: fanOutFailure('RemoveImage', removeFailures) };
  return { from: 'backend', ...(removed[0] as NamedReply) };
}
