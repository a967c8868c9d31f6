/**
 * Image references parsed by the docker reference grammar that containerd uses, so the policy judges the
 * same name the runtime will pull. Pure functions: results are values, never exceptions.
 */

export const DEFAULT_REGISTRY = 'docker.io';
const LEGACY_REGISTRY = 'index.docker.io';
const OFFICIAL_PREFIX = 'library/';
const NAME_MAX_LENGTH = 255;
const TAG_MAX_LENGTH = 128;

export interface ImageReference {
  /** Registry host (with port), as given; `index.docker.io` and no registry both become `docker.io`. */
  readonly registry: string;
  /** Path below the registry, e.g. `library/busybox`. */
  readonly repository: string;
  /** The tag given, or `latest` when neither a tag nor a digest was given. */
  readonly tag?: string;
  readonly digest?: string;
  /** No tag and no digest were given, so the runtime pulls `:latest`. */
  readonly implicitTag: boolean;
  /** What containerd records: `registry/repository@digest` when a digest is given (even with a tag), else `:tag`. */
  readonly normalized: string;
}

export type ReferenceResult = { readonly ok: true; readonly ref: ImageReference } | { readonly ok: false; readonly reason: string };

/** What an image string in a CRI request denotes. */
export type ImageSpecifier =
  | { readonly kind: 'id'; readonly id: string }
  | { readonly kind: 'reference'; readonly ref: ImageReference }
  | { readonly kind: 'malformed'; readonly reason: string };

// The grammar of github.com/distribution/reference (regexp.go), piece by piece so each failure has a reason.
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const HOST = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`);
const TAG = /^\w[\w.-]*$/;
const DIGEST = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;
const HEX_ID = /^[a-f0-9]{64}$/;
/** Algorithms containerd can verify, with the length of their hex encoding. */
const DIGEST_HEX_LENGTH: Readonly<Record<string, number>> = { sha256: 64, sha384: 96, sha512: 128 };

/** A problem with a digest string (`sha256:<hex>`), or undefined if it is valid. */
export function digestProblem(digest: string): string | undefined {
  if (!DIGEST.test(digest)) return `invalid digest "${digest}" (expected algorithm:hex, e.g. sha256:<64 hex digits>)`;
  const colon = digest.indexOf(':');
  const algorithm = digest.slice(0, colon);
  const hex = digest.slice(colon + 1);
  const length = DIGEST_HEX_LENGTH[algorithm];
  if (length === undefined) return `unsupported digest algorithm "${algorithm}" (sha256, sha384 or sha512)`;
  if (hex.length !== length) return `a ${algorithm} digest has ${length} hex digits, not ${hex.length}`;
  if (hex !== hex.toLowerCase()) return 'digest hex digits must be lowercase';
  return undefined;
}

/** An image ID (`sha256:<64 hex>`, or the 64 hex digits alone) in its `algorithm:hex` form, else undefined. */
export function imageIdOf(value: string): string | undefined {
  if (HEX_ID.test(value)) return `sha256:${value}`;
  // containerd takes any valid digest as an ID before trying it as a name, so must we.
  if (digestProblem(value) === undefined) return value;
  return undefined;
}

/** Tells an image ID from a reference, and parses the reference. */
export function classifyImage(value: string): ImageSpecifier {
  const id = imageIdOf(value);
  if (id !== undefined) return { kind: 'id', id };
  const parsed = parseImageReference(value);
  return parsed.ok ? { kind: 'reference', ref: parsed.ref } : { kind: 'malformed', reason: parsed.reason };
}

/** Splits off the registry the way the docker grammar does: a first part with `.` or `:`, `localhost`, or uppercase. */
function splitRegistry(value: string): [registry: string, remainder: string] {
  const slash = value.indexOf('/');
  const first = slash === -1 ? '' : value.slice(0, slash);
  const isRegistry = slash !== -1 && (/[.:]/.test(first) || first === 'localhost' || first.toLowerCase() !== first);
  let registry = isRegistry ? first : DEFAULT_REGISTRY;
  let remainder = isRegistry ? value.slice(slash + 1) : value;
  if (registry === LEGACY_REGISTRY) registry = DEFAULT_REGISTRY;
  if (registry === DEFAULT_REGISTRY && !remainder.includes('/')) remainder = OFFICIAL_PREFIX + remainder;
  return [registry, remainder];
}

function tagProblem(tag: string): string | undefined {
  if (tag === '') return 'empty tag after ":"';
  if (tag.length > TAG_MAX_LENGTH) return `tag is ${tag.length} characters long; at most ${TAG_MAX_LENGTH} are allowed`;
  if (!TAG.test(tag)) return `invalid tag "${tag}" (letters, digits, "_", "." and "-", not starting with "." or "-")`;
  return undefined;
}

function pathProblem(registry: string, repository: string): string | undefined {
  if (!HOST.test(registry) && !PATH_COMPONENT.test(registry)) return `invalid registry host "${registry}"`;
  for (const component of repository.split('/')) {
    if (component === '') return 'empty path component (a leading, trailing or doubled "/")';
    if (!PATH_COMPONENT.test(component)) {
      return `invalid repository path component "${component}" (lowercase letters and digits, joined by ".", "_", "__" or "-")`;
    }
  }
  const length = registry.length + 1 + repository.length;
  if (length > NAME_MAX_LENGTH) return `repository name is ${length} characters long; at most ${NAME_MAX_LENGTH} are allowed`;
  return undefined;
}

/** Parses and normalises a reference as containerd does (ParseNormalizedNamed, then ParseDockerRef). */
export function parseImageReference(value: string): ReferenceResult {
  const fail = (reason: string): ReferenceResult => ({ ok: false, reason });
  if (value === '') return fail('empty image reference');
  if (/\s/.test(value)) return fail('image reference contains whitespace');
  if (HEX_ID.test(value)) return fail('a 64-digit hex string is an image ID, not a reference');
  const [registry, remainder] = splitRegistry(value);
  const colon = remainder.indexOf(':');
  const remote = colon === -1 ? remainder : remainder.slice(0, colon);
  if (remote.toLowerCase() !== remote) return fail(`repository name "${remote}" must be lowercase`);

  const at = remainder.indexOf('@');
  if (at !== -1 && remainder.indexOf('@', at + 1) !== -1) return fail('more than one "@" in image reference');
  const named = at === -1 ? remainder : remainder.slice(0, at);
  const digest = at === -1 ? undefined : remainder.slice(at + 1);
  // A tag follows the last ":" after the last "/"; a ":" before that belongs to a registry port.
  const tagColon = named.lastIndexOf(':');
  const hasTag = tagColon > named.lastIndexOf('/');
  const repository = hasTag ? named.slice(0, tagColon) : named;
  const tag = hasTag ? named.slice(tagColon + 1) : undefined;

  const problem =
    pathProblem(registry, repository) ??
    (tag === undefined ? undefined : tagProblem(tag)) ??
    (digest === undefined ? undefined : digestProblem(digest));
  if (problem !== undefined) return fail(problem);

  const name = `${registry}/${repository}`;
  if (digest !== undefined) {
    const ref: ImageReference = { registry, repository, digest, implicitTag: false, normalized: `${name}@${digest}` };
    return { ok: true, ref: tag === undefined ? ref : { ...ref, tag } };
  }
  const implicitTag = tag === undefined;
  const effectiveTag = tag ?? 'latest';
  return { ok: true, ref: { registry, repository, tag: effectiveTag, implicitTag, normalized: `${name}:${effectiveTag}` } };
}
