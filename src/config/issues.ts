import { z } from 'zod';

/** A key path as a list: `['backends', 0, 'endpoint']`. */
export type IssuePath = readonly (string | number)[];

export interface PathIssue {
  readonly path: IssuePath;
  readonly message: string;
}

/** One problem with a configuration or policy file, as reported to the user. */
export interface ConfigIssue {
  /** Key path such as `backends[0].endpoint`, the flag (`--listen`) that set the value, or "" for the file. */
  readonly path: string;
  readonly message: string;
  /** 1-based position in the file, when the problem can be placed there. */
  readonly line?: number;
  readonly column?: number;
}

/** `backends[0].endpoint: unknown key (line 3, column 5)`. */
export function describeIssue(issue: ConfigIssue): string {
  const where = issue.line === undefined ? '' : ` (line ${issue.line}, column ${issue.column ?? 1})`;
  const path = issue.path === '' ? '' : `${issue.path}: `;
  return `${path}${issue.message}${where}`;
}

/** Messages for missing and unknown keys, shared by every schema (the proxy's config, interceptor configs, policy files). */
export const errorMap: z.core.$ZodErrorMap = (iss) => {
  if (iss.code === 'invalid_type' && iss.input === undefined) return 'required';
  if (iss.code === 'unrecognized_keys') {
    const known = iss.inst instanceof z.core.$ZodObject ? Object.keys(iss.inst._zod.def.shape) : [];
    return known.length > 0 ? `unknown key; expected one of: ${known.join(', ')}` : 'unknown key';
  }
  return undefined;
};

/** Zod issues with one issue per unknown key, so each points at the key itself. */
export function zodIssues(issues: readonly z.core.$ZodIssue[], prefix: IssuePath = []): PathIssue[] {
  return issues.flatMap((iss) => {
    const path = [...prefix, ...iss.path.map((p) => (typeof p === 'symbol' ? String(p) : p))];
    if (iss.code === 'unrecognized_keys') return iss.keys.map((k) => ({ path: [...path, k], message: iss.message }));
    return [{ path, message: iss.message }];
  });
}

/** `['backends', 0, 'endpoint']` → `backends[0].endpoint`. */
export function formatPath(path: IssuePath): string {
  return path
    .map((seg, i) => {
      if (typeof seg === 'number') return `[${seg}]`;
      if (/^[A-Za-z_$][\w$-]*$/.test(seg)) return i === 0 ? seg : `.${seg}`;
      return `[${JSON.stringify(seg)}]`;
    })
    .join('');
}
