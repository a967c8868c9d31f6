/** `cri-proxy policy check`: what the configured image policy would decide, without a runtime. */
import { parseArgs } from 'node:util';
import { loadConfigFile } from '../config/load';
import { builtinTypes } from './builtin-types';
import { ExitCode } from './exit-codes';
import { UsageError, usageOnError, type Command } from './usage';
import type { CommandOutput } from './output';
import { errorMessage } from '../errors';
import { IMAGE_POLICY_TYPE, type ImagePolicyConfig } from '../interceptors/image-policy';
import { classifyImage } from '../policies/image-reference';
import type { CompiledPolicy } from '../policies/image-rules';
import { loadConfiguredPolicy } from '../interceptors/image-policy/policy-file';

interface Line {
  readonly text: string;
  /** Denied in enforce mode: the call would fail. */
  readonly blocks: boolean;
}

/** One line for one image under one policy. */
function decide(policy: CompiledPolicy, image: string, namespace: string): Line {
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

export const policyCheckCommand: Command = {
  name: 'policy check',
  help: {
    usage: 'policy check --config FILE [--namespace NS] IMAGE...',
    summary: 'what the image policy decides for each image, and why',
    description: `Prints what each configured image policy decides for each IMAGE, and why (audit-mode denials are
marked and do not count as denied). Image IDs are resolved by the runtime: check one of the image's names.`,
    options: `  --config FILE         the proxy's configuration file, with its image-policy interceptors
  --namespace NS        decide as for a pod in namespace NS (default: none, as for a crictl pull)`,
    exitStatus: {
      OK: 'every image would be let through (audit-mode denials included)',
      CHECK_FAILED: 'an image would be denied',
      INPUT_INVALID: 'the configuration is unreadable or invalid, or has no image-policy interceptor',
    },
  },
  run: (argv, out) => Promise.resolve(check(argv, out)),
};

/** Prints each image's decision; CHECK_FAILED when any image would be denied. */
function check(argv: readonly string[], out: CommandOutput): number {
  const { values, positionals: images } = usageOnError(() =>
    parseArgs({
      args: [...argv],
      options: { config: { type: 'string' }, namespace: { type: 'string', default: '' } },
      strict: true,
      allowPositionals: true,
    }),
  );
  if (values.config === undefined) throw new UsageError('--config FILE is required');
  if (images.length === 0) throw new UsageError('name at least one IMAGE');

  let policies: { name: string; policy: CompiledPolicy }[];
  try {
    const config = loadConfigFile(values.config, builtinTypes());
    policies = config.interceptors
      .filter((entry) => entry.type === IMAGE_POLICY_TYPE)
      .map((entry) => ({ name: entry.name, policy: loadConfiguredPolicy(entry.config as ImagePolicyConfig).policy }));
  } catch (err) {
    out.err(`${errorMessage(err)}\n`);
    return ExitCode.INPUT_INVALID;
  }
  if (policies.length === 0) {
    out.err(`${values.config}: no interceptor of type "${IMAGE_POLICY_TYPE}" is configured\n`);
    return ExitCode.INPUT_INVALID;
  }
  let blocked = false;
  for (const image of images) {
    for (const { name, policy } of policies) {
      const line = decide(policy, image, values.namespace);
      blocked ||= line.blocks;
      out.out(`${policies.length > 1 ? `[${name}] ` : ''}${line.text}\n`);
    }
  }
  return blocked ? ExitCode.CHECK_FAILED : ExitCode.OK;
}
