/** Loading an image policy from the interceptor's config: inline rules, or a YAML rules file. */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { describeIssue, formatPath } from '../../config/issues';
import { parseYamlWith } from '../../config/yaml';
import { errorMessage } from '../../errors';
import {
  compilePolicy,
  type CompiledPolicy,
  type ImageRule,
  type PolicyAction,
  type PolicyMode,
  type RuleSet,
} from '../../policies/image-rules';
import { policyFileSchema, type PolicyFileContent } from '../../policies/policy-schema';
import { loadTrust, type RuleTrust, type TrustProblem } from '../../provenance/trust';

export const DEFAULT_MODE: PolicyMode = 'enforce';
export const DEFAULT_ACTION: PolicyAction = 'deny';

/** The policy part of the interceptor's config. */
export interface PolicyConfig {
  readonly mode?: PolicyMode | undefined;
  readonly defaultAction?: PolicyAction | undefined;
  readonly rules?: readonly ImageRule[] | undefined;
  readonly rulesFile?: string | undefined;
}

/** What each rule with `verify` trusts, by rule index. */
export type PolicyTrust = ReadonlyMap<number, RuleTrust>;

/** A policy and the trust its rules name, loaded together so a reload swaps both at once. */
export interface LoadedPolicy {
  readonly policy: CompiledPolicy;
  readonly trust: PolicyTrust;
}

export type PolicyLoad =
  ({ readonly ok: true; readonly ruleSet: RuleSet } & LoadedPolicy) | { readonly ok: false; readonly problems: readonly string[] };

/**
 * Reads the key files and trusted roots of every rule with `verify`; `base` is the folder relative paths are
 * relative to (the rules file's). Problems carry their path from the rule list (`[2, 'verify', 0, 'keys', 1]`).
 */
export function loadPolicyTrust(
  rules: readonly ImageRule[],
  base: string | undefined,
): { readonly trust: PolicyTrust; readonly problems: readonly TrustProblem[] } {
  const trust = new Map<number, RuleTrust>();
  const problems: TrustProblem[] = [];
  rules.forEach((rule, index) => {
    if (rule.verify === undefined) return;
    const loaded = loadTrust(rule.verify, (path) => (base === undefined ? resolve(path) : resolve(base, path)));
    if (loaded.ok) trust.set(index, loaded.trust);
    else problems.push(...loaded.problems.map((p) => ({ path: [index, ...p.path], message: p.message })));
  });
  return { trust, problems };
}

/** Settings from the interceptor config fill in what the file leaves out; a clash is an error, not a guess. */
function merge(config: PolicyConfig, file: PolicyFileContent, base: string | undefined): PolicyLoad {
  const problems: string[] = [];
  for (const key of ['mode', 'defaultAction'] as const) {
    const here = config[key];
    const there = file[key];
    if (here !== undefined && there !== undefined && here !== there) {
      problems.push(`${key}: "${there}" conflicts with ${key} "${here}" in the interceptor config; set it in one place`);
    }
  }
  if (problems.length > 0) return { ok: false, problems };
  const ruleSet: RuleSet = {
    mode: file.mode ?? config.mode ?? DEFAULT_MODE,
    defaultAction: file.defaultAction ?? config.defaultAction ?? DEFAULT_ACTION,
    rules: file.rules,
  };
  return compiled(ruleSet, base);
}

function compiled(ruleSet: RuleSet, base: string | undefined): PolicyLoad {
  let policy: CompiledPolicy;
  try {
    policy = compilePolicy(ruleSet);
  } catch (err) {
    return { ok: false, problems: [errorMessage(err)] };
  }
  const { trust, problems } = loadPolicyTrust(ruleSet.rules, base);
  if (problems.length > 0) return { ok: false, problems: problems.map((p) => `${formatPath(['rules', ...p.path])}: ${p.message}`) };
  return { ok: true, policy, trust, ruleSet };
}

/**
 * Parses and validates a rules file's text; each problem names its key path and line. Key files and trusted
 * roots are read relative to `base` (the rules file's folder).
 */
export function parsePolicyText(text: string, config: PolicyConfig, base?: string): PolicyLoad {
  const result = parseYamlWith(text, policyFileSchema);
  if (!result.ok) return { ok: false, problems: result.issues.map(describeIssue) };
  return merge(config, result.value, base);
}

/** Reads a rules file (config loading has already made a relative path absolute, against the config file's folder). */
export function readPolicyFile(file: string, config: PolicyConfig): PolicyLoad & { readonly text?: string } {
  let text: string;
  try {
    text = readFileSync(resolve(file), 'utf8');
  } catch (err) {
    return { ok: false, problems: [`cannot read file: ${errorMessage(err)}`] };
  }
  return { ...parsePolicyText(text, config, dirname(resolve(file))), text };
}

/** How denials name the policy, so `kubectl describe pod` points at the file to change. */
export function policyLabel(config: PolicyConfig, interceptorName: string): string {
  return config.rulesFile !== undefined
    ? `cri-proxy image policy ${config.rulesFile}`
    : `cri-proxy inline image policy of interceptor "${interceptorName}"`;
}

/**
 * The policy a validated config describes; throws if its rules file (or a key file) has turned bad since
 * validation. Inline rules' file paths were made absolute when the config was loaded.
 */
export function loadConfiguredPolicy(config: PolicyConfig): LoadedPolicy & { readonly text?: string } {
  if (config.rulesFile === undefined) {
    const result = compiled(
      { mode: config.mode ?? DEFAULT_MODE, defaultAction: config.defaultAction ?? DEFAULT_ACTION, rules: config.rules ?? [] },
      undefined,
    );
    if (!result.ok) throw new Error(`image policy: ${result.problems.join('; ')}`);
    return { policy: result.policy, trust: result.trust };
  }
  const result = readPolicyFile(config.rulesFile, config);
  if (!result.ok) throw new Error(`image policy ${config.rulesFile}: ${result.problems.join('; ')}`);
  const loaded = { policy: result.policy, trust: result.trust };
  return result.text === undefined ? loaded : { ...loaded, text: result.text };
}
