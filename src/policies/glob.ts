/**
 * The one glob dialect of cri-proxy, used wherever a setting names things by pattern: the chain's `methods`,
 * audit's redacted label and annotation keys, the image policy's namespaces and image patterns.
 *
 * - `*` matches any run of characters, the empty one included;
 * - `?` matches exactly one character;
 * - every other character matches itself (regex metacharacters have no meaning).
 *
 * With `separator` (image paths use "/"), `*` and `?` stay within one segment, and `**` as a whole segment
 * matches across segments: `a/**` anything below `a` (one segment or more), `**\/b` any `b` at any depth,
 * `a/**\/b` zero or more segments between, and `**` alone everything.
 * Pure: compiles to a RegExp and does nothing else.
 */
export interface GlobOptions {
  /** Compare without regard to case (keys whose spelling varies, hostnames). */
  readonly caseInsensitive?: boolean;
  /** Segment separator: wildcards stay inside segments and `**` spans them. */
  readonly separator?: string;
}

const escapeRegex = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');

/** One segment's `*` and `?`, confined to the segment when `notSeparator` is given. */
function segmentSource(segment: string, notSeparator: string | undefined): string {
  const any = notSeparator === undefined ? '.' : `[^${notSeparator}]`;
  let out = '';
  for (const ch of segment) {
    if (ch === '*') out += `${any}*`;
    else if (ch === '?') out += any;
    else out += escapeRegex(ch);
  }
  return out;
}

function segmentedSource(pattern: string, separator: string): string {
  const sep = escapeRegex(separator);
  const segments = pattern.split(separator);
  const last = segments.length - 1;
  if (last === 0) return segments[0] === '**' ? '.+' : segmentSource(pattern, sep);
  let out = '';
  segments.forEach((segment, i) => {
    if (segment === '**') {
      if (i === 0) out += `(?:[^${sep}]+${sep})*`;
      else if (i === last) out += `${sep}.+`;
      else out += `(?:${sep}[^${sep}]+)*`;
      return;
    }
    // A leading `**` already ends in the separator.
    const joint = i === 0 || (i === 1 && segments[0] === '**') ? '' : sep;
    out += joint + segmentSource(segment, sep);
  });
  return out;
}

/** The RegExp a glob denotes, anchored at both ends. */
export function compileGlob(pattern: string, options: GlobOptions = {}): RegExp {
  const source = options.separator === undefined ? segmentSource(pattern, undefined) : segmentedSource(pattern, options.separator);
  return new RegExp(`^${source}$`, options.caseInsensitive === true ? 'i' : '');
}

/** True for values any of the patterns matches; false for all when there are none. */
export function globMatcher(patterns: readonly string[], options: GlobOptions = {}): (value: string) => boolean {
  const regexes = patterns.map((p) => compileGlob(p, options));
  return (value) => regexes.some((re) => re.test(value));
}
