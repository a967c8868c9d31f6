/** The images a request names at a door: each `ImageSpec` of the door's sites, in request order. */
import type { DecodedMessage } from '../../messages/codec';
import { messagesAt } from '../../messages/field-at';
import type { ImageDoor, ImageSite } from './doors';

/** One image a call names, as the policy decides it. */
export interface ImageAtDoor {
  /** The name (or image ID) to decide on; "" when a required image is missing. */
  readonly image: string;
  /** Where the request names it (`config.mounts[1].image`). */
  readonly at: string;
  readonly noun: ImageSite['noun'];
  /** Whether a denial says where: only where a call can name several images of the kind. */
  readonly showAt: boolean;
}

function nameIn(spec: DecodedMessage, fields: readonly string[]): string {
  for (const field of fields) {
    const value = spec[field];
    if (typeof value === 'string' && value !== '') return value;
  }
  return '';
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
      const image = nameIn(message, site.nameFields);
      if (image !== '' || site.required) found.push({ image, at, noun: site.noun, showAt });
    }
  }
  return found;
}
