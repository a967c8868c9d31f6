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
import { loadConfiguredPolicy, type PolicyTrust } from '../interceptors/image-policy/policy-file';
import { createProvenance } from '../interceptors/image-policy/provenance-config';
import { silentLogger } from '../log';
import { describeSigner } from '../provenance/outcome';
import type { Provenance } from '../provenance/provenance';

interface Line {
  readonly text: string;
  /** Denied in enforce mode: the call would fail. */
  readonly blocks: boolean;
}

interface CheckedPolicy {
  readonly name: string;
  readonly policy: CompiledPolicy;
  readonly trust: PolicyTrust;
  /** Verifies signatures online; undefined with --offline or without rules that ask for them. */
  readonly provenance: Promise<Provenance> | undefined;
}

/** One line for one image under one policy; an image a `verify` rule allows is verified at its registry now. */
async function decide({ policy, trust, provenance: loading }: CheckedPolicy, image: string, namespace: string): Promise<Line> {
  const spec = classifyImage(image);
  const enforced = policy.mode === 'enforce';
  const denied = (rest: string): Line => ({ text: `${enforced ? 'deny' : 'deny (audit)'} ${rest}`, blocks: enforced });
  if (spec.kind === 'malformed') return denied(`${image}: malformed image reference: ${spec.reason}`);
  if (spec.kind === 'id') return denied(`${spec.id}: image IDs are resolved by the runtime; check one of its names instead`);
  const decision = policy.decide(spec.ref, namespace);
  const by = decision.rule === undefined ? 'default action' : `rule "${decision.rule.name}"`;
  const rest = `${spec.ref.normalized} by ${by}: ${decision.reason}`;
  if (decision.action !== 'allow') return denied(rest);
  const ruleTrust = decision.rule === undefined ? undefined : trust.get(decision.rule.index);
  if (decision.verify === undefined || ruleTrust === undefined) return { text: `allow ${rest}`, blocks: false };
  if (loading === undefined) return { text: `allow ${rest}; needs a verified signature (not checked: --offline)`, blocks: false };
  const answer = await (await loading).verifyName(ruleTrust, spec.ref, { remember: false });
  const at = answer.digest === undefined ? '' : ` (${answer.digest})`;
  if (answer.result.ok) return { text: `allow ${rest}; signed by ${describeSigner(answer.result.signer)}${at}`, blocks: false };
  const why = `not verified${at}: ${answer.result.failure}: ${answer.result.detail}`;
  if (decision.verify.onUnverifiable === 'audit')
    return { text: `allow ${rest}; ${why} (allowed by onUnverifiable: audit)`, blocks: false };
  return denied(`${spec.ref.normalized} by ${by}: ${why}`);
}

export const policyCheckCommand: Command = {
  name: 'policy check',
  help: {
    usage: 'policy check --config FILE [--namespace NS] [--offline] IMAGE...',
    summary: 'what the image policy decides for each image, and why (signatures verified)',
    description: `Prints what each configured image policy decides for each IMAGE, and why (audit-mode denials are
marked and do not count as denied). Image IDs are resolved by the runtime: check one of the image's names.
Where the deciding rule asks for a signature (verify), the image is verified at its registry now, as at
PullImage, and the line names the signer; the proxy's cache of verified digests is read, never written.`,
    options: `  --config FILE         the proxy's configuration file, with its image-policy interceptors
  --namespace NS        decide as for a pod in namespace NS (default: none, as for a crictl pull)
  --offline             ask no registry: images a verify rule allows are shown as needing a signature`,
    exitStatus: {
      OK: 'every image would be let through (audit-mode denials included)',
      CHECK_FAILED: 'an image would be denied',
      INPUT_INVALID: 'the configuration is unreadable or invalid, or has no image-policy interceptor',
    },
  },
  run: (argv, out) => check(argv, out),
};

/** Prints each image's decision; CHECK_FAILED when any image would be denied. */
async function check(argv: readonly string[], out: CommandOutput): Promise<number> {
  const { values, positionals: images } = usageOnError(() =>
    parseArgs({
      args: [...argv],
      options: { config: { type: 'string' }, namespace: { type: 'string', default: '' }, offline: { type: 'boolean', default: false } },
      strict: true,
      allowPositionals: true,
    }),
  );
  if (values.config === undefined) throw new UsageError('--config FILE is required');
  if (images.length === 0) throw new UsageError('name at least one IMAGE');

  let policies: CheckedPolicy[];
  try {
    const config = loadConfigFile(values.config, builtinTypes());
    policies = config.interceptors
      .filter((entry) => entry.type === IMAGE_POLICY_TYPE)
      .map((entry) => {
        const settings = entry.config as ImagePolicyConfig;
        const { policy, trust } = loadConfiguredPolicy(settings);
        const online = trust.size > 0 && !values.offline;
        return { name: entry.name, policy, trust, provenance: online ? createProvenance(settings, entry.name, silentLogger) : undefined };
      });
    for (const entry of policies) await entry.provenance;
  } catch (err) {
    out.err(`${errorMessage(err)}\n`);
    return ExitCode.INPUT_INVALID;
  }
  if (policies.length === 0) {
    out.err(`${values.config}: no interceptor of type "${IMAGE_POLICY_TYPE}" is configured\n`);
    return ExitCode.INPUT_INVALID;
  }
  let blocked = false;
  try {
    for (const image of images) {
      for (const entry of policies) {
        const line = await decide(entry, image, values.namespace);
        blocked ||= line.blocks;
        out.out(`${policies.length > 1 ? `[${entry.name}] ` : ''}${line.text}\n`);
      }
    }
  } finally {
    for (const { provenance } of policies) await (await provenance)?.close();
  }
  return blocked ? ExitCode.CHECK_FAILED : ExitCode.OK;
}
