/** Loading an image policy from the interceptor's config: inline rules, or a YAML rules file. */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describeIssue } from '../../config/issues';
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

export const DEFAULT_MODE: PolicyMode = 'enforce';
export const DEFAULT_ACTION: PolicyAction = 'deny';

/** The policy part of the interceptor's config. */
export interface PolicyConfig {
  readonly mode?: PolicyMode | undefined;
  readonly defaultAction?: PolicyAction | undefined;
  readonly rules?: readonly ImageRule[] | undefined;
  readonly rulesFile?: string | undefined;
}

export type PolicyLoad =
  | { readonly ok: true; readonly policy: CompiledPolicy; readonly ruleSet: RuleSet }
  | { readonly ok: false; readonly problems: readonly string[] };

/** Settings from the interceptor config fill in what the file leaves out; a clash is an error, not a guess. */
function merge(config: PolicyConfig, file: PolicyFileContent): PolicyLoad {
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
  return compiled(ruleSet);
}

function compiled(ruleSet: RuleSet): PolicyLoad {
  try {
    return { ok: true, policy: compilePolicy(ruleSet), ruleSet };
  } catch (err) {
    return { ok: false, problems: [errorMessage(err)] };
  }
}

/** Parses and validates a rules file's text; each problem names its key path and line. */
export function parsePolicyText(text: string, config: PolicyConfig): PolicyLoad {
  const result = parseYamlWith(text, policyFileSchema);
  if (!result.ok) return { ok: false, problems: result.issues.map(describeIssue) };
  return merge(config, result.value);
}

/** Reads a rules file (config loading has already made a relative path absolute, against the config file's folder). */
export function readPolicyFile(file: string, config: PolicyConfig): PolicyLoad & { readonly text?: string } {
  let text: string;
  try {
    text = readFileSync(resolve(file), 'utf8');
  } catch (err) {
    return { ok: false, problems: [`cannot read file: ${errorMessage(err)}`] };
  }
  return { ...parsePolicyText(text, config), text };
}

/** How denials name the policy, so `kubectl describe pod` points at the file to change. */
export function policyLabel(config: PolicyConfig, interceptorName: string): string {
  return config.rulesFile !== undefined
    ? `cri-proxy image policy ${config.rulesFile}`
    : `cri-proxy inline image policy of interceptor "${interceptorName}"`;
}

/** The policy a validated config describes; throws if its rules file has turned bad since validation. */
export function loadConfiguredPolicy(config: PolicyConfig): { readonly policy: CompiledPolicy; readonly text?: string } {
  if (config.rulesFile === undefined) {
    const result = compiled({
      mode: config.mode ?? DEFAULT_MODE,
      defaultAction: config.defaultAction ?? DEFAULT_ACTION,
      rules: config.rules ?? [],
    });
    if (!result.ok) throw new Error(`image policy: ${result.problems.join('; ')}`);
    return { policy: result.policy };
  }
  const result = readPolicyFile(config.rulesFile, config);
  if (!result.ok) throw new Error(`image policy ${config.rulesFile}: ${result.problems.join('; ')}`);
  return result.text === undefined ? { policy: result.policy } : { policy: result.policy, text: result.text };
}
