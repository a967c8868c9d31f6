/**
 * The image policy's decision logic: rule sets are compiled once (globs → regexes) and then decide
 * references with no I/O. Precedence is documented in docs/image-policy.md.
 */
import { compileGlob } from './glob';
import type { ImageReference } from './image-reference';

export const POLICY_ACTIONS = ['allow', 'deny'] as const;
export const POLICY_MODES = ['enforce', 'audit'] as const;
/** What an allow rule with `verify` does with an image whose signature cannot be verified. */
export const UNVERIFIABLE_ACTIONS = ['deny', 'audit'] as const;
export type PolicyAction = (typeof POLICY_ACTIONS)[number];
export type PolicyMode = (typeof POLICY_MODES)[number];
export type UnverifiableAction = (typeof UNVERIFIABLE_ACTIONS)[number];

/** A Fulcio certificate identity: the certificate chains to the trusted root and has a transparency log entry. */
export interface KeylessIdentity {
  readonly issuer?: string | undefined;
  readonly issuerRegExp?: string | undefined;
  readonly subject?: string | undefined;
  readonly subjectRegExp?: string | undefined;
  /** A sigstore trusted root (trusted_root.json): CAs, transparency logs, timestamp authorities. */
  readonly trustedRoot: string;
}

/**
 * One way an image may be signed, exactly one of: `keys` (PEM public key files, any of which may have signed) or
 * `keyless`. A rule's `verify` is satisfied by any one of its entries.
 */
export interface VerifyEntry {
  readonly keys?: readonly string[] | undefined;
  readonly keyless?: KeylessIdentity | undefined;
}

export interface RuleConstraints {
  /** Deny `:latest`, given or implied by a missing tag (a digest pins the content, so it is exempt). */
  readonly denyLatest?: boolean | undefined;
  /** Deny references without a digest. */
  readonly requireDigest?: boolean | undefined;
}

export interface ImageRule {
  readonly name: string;
  readonly match: { readonly images: readonly string[] };
  /** Namespace names or `*` globs; absent means every namespace. */
  readonly namespaces?: readonly string[] | undefined;
  readonly action: PolicyAction;
  readonly constraints?: RuleConstraints | undefined;
  /** Allow rules only: the image must also carry a signature one of these entries trusts. */
  readonly verify?: readonly VerifyEntry[] | undefined;
  /** With `verify`: `deny` (default) refuses an image that cannot be verified; `audit` lets it run with a warning. */
  readonly onUnverifiable?: UnverifiableAction | undefined;
}

export interface RuleSet {
  readonly mode: PolicyMode;
  readonly defaultAction: PolicyAction;
  readonly rules: readonly ImageRule[];
}

export interface RuleRef {
  readonly name: string;
  readonly index: number;
}

export interface Decision {
  readonly action: PolicyAction;
  readonly reason: string;
  /** The rule that decided; undefined when the default action did. */
  readonly rule: RuleRef | undefined;
  /** In audit mode a deny is reported, not enforced. */
  readonly mode: PolicyMode;
  /** Set on an allow that still needs a verified signature (the deciding rule has `verify`). */
  readonly verify?: { readonly onUnverifiable: UnverifiableAction } | undefined;
}

export interface CompiledPattern {
  /** The pattern after normalisation (`index.docker.io` → `docker.io`, `docker.io/x` → `docker.io/library/x`). */
  readonly source: string;
  readonly regex: RegExp;
  /** Characters before the first wildcard: the pattern's specificity. */
  readonly literalLength: number;
}

export type PatternResult = { readonly ok: true; readonly pattern: CompiledPattern } | { readonly ok: false; readonly reason: string };

const REGISTRY_SEGMENT = /^[A-Za-z0-9.\-:*[\]]+$/;
const PATH_SEGMENT = /^[a-z0-9._\-*]+$/;

/** Brings the registry part into the form references are matched in; returns a problem or the segments. */
function normaliseSegments(pattern: string): string[] | string {
  if (pattern === '') return 'empty pattern';
  if (/\s/.test(pattern)) return 'pattern contains whitespace';
  if (pattern.includes('@')) return 'patterns match registry/repository only; use constraints.requireDigest for digests';
  const segments = pattern.split('/');
  if (segments.some((s) => s === '')) return 'empty path segment (a leading, trailing or doubled "/")';
  const [first = '', ...rest] = segments;
  if (segments.some((s) => s.includes('**') && s !== '**')) return '"**" must be a whole path segment';
  if (first !== '**' && rest.length === 0) return 'pattern needs a registry and a repository, e.g. docker.io/library/busybox';
  if (!REGISTRY_SEGMENT.test(first)) return `invalid registry part "${first}"`;
  if (!first.includes('*') && !/[.:]/.test(first) && first !== 'localhost') {
    return `pattern must start with a registry host or a wildcard, e.g. docker.io/${pattern}`;
  }
  for (const segment of rest) {
    if (segment.includes(':')) return 'patterns match registry/repository only; use constraints.denyLatest for tags';
    if (!PATH_SEGMENT.test(segment)) return `invalid repository part "${segment}" (image names are lowercase)`;
  }
  let registry = first.toLowerCase();
  if (registry === 'index.docker.io') registry = 'docker.io';
  const [only = ''] = rest;
  if (registry === 'docker.io' && rest.length === 1 && only !== '**') {
    if (only.includes('*')) return 'docker.io names have two path segments: use docker.io/library/* for official images';
    rest.unshift('library');
  }
  return [registry, ...rest];
}

/** Compiles an image glob: `*` is one path segment (no "/"), `**` any number of them. */
export function compileImagePattern(pattern: string): PatternResult {
  const segments = normaliseSegments(pattern);
  if (typeof segments === 'string') return { ok: false, reason: segments };
  const source = segments.join('/');
  const wildcard = source.indexOf('*');
  const regex = compileGlob(source, { separator: '/' });
  return { ok: true, pattern: { source, regex, literalLength: wildcard === -1 ? source.length : wildcard } };
}

/** Compiles a namespace name or glob (`*` = any characters). */
export function compileNamespacePattern(pattern: string): { ok: true; regex: RegExp } | { ok: false; reason: string } {
  if (!/^[a-z0-9*-]{1,63}$/.test(pattern)) {
    return { ok: false, reason: 'namespace patterns are lowercase letters, digits, "-" and "*" (at most 63)' };
  }
  return { ok: true, regex: compileGlob(pattern) };
}

interface CompiledRule {
  readonly ref: RuleRef;
  readonly action: PolicyAction;
  readonly patterns: readonly CompiledPattern[];
  readonly namespaces: readonly RegExp[] | undefined;
  readonly denyLatest: boolean;
  readonly requireDigest: boolean;
  readonly verify: { readonly onUnverifiable: UnverifiableAction } | undefined;
}

export interface CompiledPolicy {
  readonly mode: PolicyMode;
  readonly defaultAction: PolicyAction;
  readonly ruleCount: number;
  decide(ref: ImageReference, namespace: string): Decision;
}

function imagePattern(rule: string, pattern: string): CompiledPattern {
  const result = compileImagePattern(pattern);
  if (!result.ok) throw new Error(`rule "${rule}" image pattern "${pattern}": ${result.reason}`);
  return result.pattern;
}

function namespacePattern(rule: string, pattern: string): RegExp {
  const result = compileNamespacePattern(pattern);
  if (!result.ok) throw new Error(`rule "${rule}" namespace "${pattern}": ${result.reason}`);
  return result.regex;
}

/** Why a reference fails an allow rule's constraints, or undefined. */
function constraintProblem(rule: CompiledRule, ref: ImageReference): string | undefined {
  if (rule.requireDigest && ref.digest === undefined) return `a digest is required (name@sha256:...), got tag "${ref.tag ?? ''}"`;
  if (rule.denyLatest && ref.digest === undefined && ref.tag === 'latest') {
    return ref.implicitTag ? 'tag latest (implied by giving no tag) is not allowed' : 'tag latest is not allowed';
  }
  return undefined;
}

/** Compiles a rule set; throws on an invalid pattern (validation reports those first, with their paths). */
export function compilePolicy(set: RuleSet): CompiledPolicy {
  const rules: CompiledRule[] = set.rules.map((rule, index) => ({
    ref: { name: rule.name, index },
    action: rule.action,
    patterns: rule.match.images.map((p) => imagePattern(rule.name, p)),
    namespaces: rule.namespaces?.map((p) => namespacePattern(rule.name, p)),
    denyLatest: rule.constraints?.denyLatest === true,
    requireDigest: rule.constraints?.requireDigest === true,
    verify: rule.verify === undefined ? undefined : { onUnverifiable: rule.onUnverifiable ?? 'deny' },
  }));
  const { mode, defaultAction } = set;

  const decide = (ref: ImageReference, namespace: string): Decision => {
    // Registry hosts are case-insensitive; repositories are lowercase by grammar.
    const target = `${ref.registry.toLowerCase()}/${ref.repository}`;
    let best: Candidate | undefined;
    for (const rule of rules) {
      if (rule.namespaces !== undefined && (namespace === '' || !rule.namespaces.some((r) => r.test(namespace)))) continue;
      let pattern: CompiledPattern | undefined;
      for (const p of rule.patterns) {
        if ((pattern === undefined || p.literalLength > pattern.literalLength) && p.regex.test(target)) pattern = p;
      }
      if (pattern === undefined) continue;
      const candidate: Candidate = { rule, pattern, scoped: rule.namespaces !== undefined };
      if (best === undefined || outranks(candidate, best)) best = candidate;
    }
    if (best === undefined) return { action: defaultAction, reason: 'no rule matches', rule: undefined, mode };
    const { rule, pattern } = best;
    const matched = `matches "${pattern.source}"`;
    if (rule.action === 'deny') return { action: 'deny', reason: matched, rule: rule.ref, mode };
    const problem = constraintProblem(rule, ref);
    if (problem !== undefined) return { action: 'deny', reason: problem, rule: rule.ref, mode };
    return { action: 'allow', reason: matched, rule: rule.ref, mode, verify: rule.verify };
  };
  return { mode, defaultAction, ruleCount: rules.length, decide };
}

interface Candidate {
  readonly rule: CompiledRule;
  readonly pattern: CompiledPattern;
  readonly scoped: boolean;
}

/** Specificity, then namespace scope, then deny over allow; file order breaks the remaining ties. */
function outranks(a: Candidate, b: Candidate): boolean {
  if (a.pattern.literalLength !== b.pattern.literalLength) return a.pattern.literalLength > b.pattern.literalLength;
  if (a.scoped !== b.scoped) return a.scoped;
  if (a.rule.action !== b.rule.action) return a.rule.action === 'deny';
  return a.rule.ref.index < b.rule.ref.index;
}

/**
 * Decides an image known by several names (an image ID's tags and digests): allowed if any name is allowed,
 * since they all denote the same content (a name allowed outright before one whose rule asks for a signature);
 * otherwise the first name's denial. Undefined for no names.
 */
export function decideAmong(
  policy: CompiledPolicy,
  refs: readonly ImageReference[],
  namespace: string,
): { ref: ImageReference; decision: Decision } | undefined {
  let first: { ref: ImageReference; decision: Decision } | undefined;
  let verified: { ref: ImageReference; decision: Decision } | undefined;
  for (const ref of refs) {
    const decision = policy.decide(ref, namespace);
    if (decision.action === 'allow' && decision.verify === undefined) return { ref, decision };
    if (decision.action === 'allow') verified ??= { ref, decision };
    first ??= { ref, decision };
  }
  return verified ?? first;
}
