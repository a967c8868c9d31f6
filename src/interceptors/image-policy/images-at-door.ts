/** The images a request names at a door: each `ImageSpec` of the door's sites, in request order. */
import type { DecodedMessage } from '../../messages/codec';
import { messagesAt } from '../../messages/field-at';
import { classifyImage } from '../../policies/image-reference';
import type { ImageDoor, ImageSite } from './doors';

/** One image a call names, as the policy decides it. */
export interface ImageAtDoor {
  /** The name (or image ID) to decide on; "" when a required image is missing. */
  readonly image: string;
  /** The image ID among its name fields, if one holds one (kubelet's resolved ID beside the name the user wrote). */
  readonly id: string | undefined;
  /** Where the request names it (`config.mounts[1].image`). */
  readonly at: string;
  readonly noun: ImageSite['noun'];
  /** Whether a denial says where: only where a call can name several images of the kind. */
  readonly showAt: boolean;
}

/** The name to decide on (the first non-empty field) and the first field's value that is an image ID. */
function namesIn(spec: DecodedMessage, fields: readonly string[]): { image: string; id: string | undefined } {
  let image = '';
  let id: string | undefined;
  for (const field of fields) {
    const value = spec[field];
    if (typeof value !== 'string' || value === '') continue;
    if (image === '') image = value;
    if (id !== undefined) continue;
    const kind = classifyImage(value);
    if (kind.kind === 'id') id = kind.id;
  }
  return { image, id };
}

/**
 * Every image the request names at the door. A mount without an image (a host path) names none; a container
 * without one names "" (denied as malformed), as does a request without the image a pull needs.
 */
export function imagesAtDoor(door: ImageDoor, request: DecodedMessage | undefined): ImageAtDoor[] {
  const found: ImageAtDoor[] = [];
  for (const site of door.sites) {
    const showAt = site.noun !== 'image' || site.path.includes('[]');
    for (const { message, at } of messagesAt(request ?? {}, site.path, site.required)) {
      const { image, id } = namesIn(message, site.nameFields);
      if (image !== '' || site.required) found.push({ image, id, at, noun: site.noun, showAt });
    }
  }
  return found;
}
