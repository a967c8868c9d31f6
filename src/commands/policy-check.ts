/** `cri-proxy policy check`: what the configured image policy would decide, without a runtime. */
import { parseArgs } from 'node:util';
import { loadConfigFile } from '../config/load';
import { builtinTypes } from './builtin-types';
import { ExitCode, exitCodesHelp } from './exit-codes';
import { processOutput, type CommandOutput } from './output';
import { errorMessage } from '../errors';
import { IMAGE_POLICY_TYPE, type ImagePolicyConfig } from '../interceptors/image-policy';
import { classifyImage } from '../policies/image-reference';
import type { CompiledPolicy } from '../policies/image-rules';
import { loadConfiguredPolicy } from '../interceptors/image-policy/policy-file';

const POLICY_CHECK_USAGE = 'cri-proxy policy check --config FILE [--namespace NS] IMAGE...';
const POLICY_CHECK_HELP = `Prints what each configured image policy decides for each IMAGE, and why (audit-mode denials are
marked and do not count as denied).

${exitCodesHelp(['OK', 'CHECK_FAILED', 'USAGE', 'INPUT_INVALID'])}`;

interface Line {
  readonly text: string;
  /** Denied in enforce mode: the call would fail. */
  readonly blocks: boolean;
}

/** One line for one image under one policy. */
function check(policy: CompiledPolicy, image: string, namespace: string): Line {
  const spec = classifyImage(image);
  const enforced = policy.mode === 'enforce';
  const denied = (rest: string): Line => ({ text: `${enforced ? 'deny' : 'deny (audit)'} ${rest}`, blocks: enforced });
  if (spec.kind === 'malformed') return denied(`${image}: malformed image reference: ${spec.reason}`);
  if (spec.kind === 'id') return denied(`${spec.id}: image IDs are resolved by the runtime; check one of its names instead`);
  const decision = policy.decide(spec.ref, namespace);
  const by = decision.rule === undefined ? 'default action' : `rule "${decision.rule.name}"`;
  const rest = `${spec.ref.normalized} by ${by}: ${decision.reason}`;
  return decision.action === 'allow' ? { text: `allow ${rest}`, blocks: false } : denied(rest);
}

/** Prints each image's decision; CHECK_FAILED when any image would be denied. */
export function runPolicyCheck(argv: readonly string[], out: CommandOutput = processOutput): Promise<number> {
  const usage = (problem: string): Promise<number> => {
    out.err(`cri-proxy policy check: ${problem}\nUsage: ${POLICY_CHECK_USAGE}\n`);
    return Promise.resolve(ExitCode.USAGE);
  };
  const [sub, ...after] = argv;
  // Takes the arguments after `policy` (`check ...`); those after `check` alone work as well.
  const rest = sub === 'check' ? after : sub?.startsWith('-') === true ? argv : undefined;
  if (rest === undefined) return usage(sub === undefined ? 'missing subcommand "check"' : `unknown subcommand "${sub}"`);
  let parsed;
  try {
    parsed = parseArgs({
      args: [...rest],
      options: { config: { type: 'string' }, namespace: { type: 'string', default: '' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: true,
    });
  } catch (err) {
    return usage(errorMessage(err).split(/\.\s/)[0] ?? 'invalid arguments');
  }
  const { values, positionals: images } = parsed;
  if (values.help === true) {
    out.out(`Usage: ${POLICY_CHECK_USAGE}\n\n${POLICY_CHECK_HELP}`);
    return Promise.resolve(ExitCode.OK);
  }
  if (values.config === undefined) return usage('--config FILE is required');
  if (images.length === 0) return usage('name at least one IMAGE');

  let policies: { name: string; policy: CompiledPolicy }[];
  try {
    const config = loadConfigFile(values.config, builtinTypes());
    policies = config.interceptors
      .filter((entry) => entry.type === IMAGE_POLICY_TYPE)
      .map((entry) => ({ name: entry.name, policy: loadConfiguredPolicy(entry.config as ImagePolicyConfig).policy }));
  } catch (err) {
    out.err(`${errorMessage(err)}\n`);
    return Promise.resolve(ExitCode.INPUT_INVALID);
  }
  if (policies.length === 0) {
    out.err(`${values.config}: no interceptor of type "${IMAGE_POLICY_TYPE}" is configured\n`);
    return Promise.resolve(ExitCode.INPUT_INVALID);
  }
  let blocked = false;
  for (const image of images) {
    for (const { name, policy } of policies) {
      const line = check(policy, image, values.namespace);
      blocked ||= line.blocks;
      out.out(`${policies.length > 1 ? `[${name}] ` : ''}${line.text}\n`);
    }
  }
  return Promise.resolve(blocked ? ExitCode.CHECK_FAILED : ExitCode.OK);
}
