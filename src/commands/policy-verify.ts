/**
 * `cri-proxy policy verify`: one signature verification, online, without a proxy or a runtime. What to trust comes
 * from the proxy's config (the rule its image policy picks for the image) or from the command line.
 */
import { parseArgs } from 'node:util';
import { loadConfigFile } from '../config/load';
import { errorMessage } from '../errors';
import { IMAGE_POLICY_TYPE, type ImagePolicyConfig } from '../interceptors/image-policy';
import { loadConfiguredPolicy } from '../interceptors/image-policy/policy-file';
import type { VerificationSettings } from '../interceptors/image-policy/provenance-config';
import { classifyImage, type ImageReference } from '../policies/image-reference';
import type { VerifyEntry } from '../policies/image-rules';
import { describeSigner } from '../provenance/outcome';
import type { Provenance } from '../provenance/provenance';
import { loadTrust, type RuleTrust } from '../provenance/trust';
import { builtinTypes } from './builtin-types';
import { ExitCode } from './exit-codes';
import type { CommandOutput } from './output';
import { UsageError, usageOnError, type Command } from './usage';

const OPTIONS = {
  config: { type: 'string' },
  namespace: { type: 'string', default: '' },
  key: { type: 'string', multiple: true },
  'trusted-root': { type: 'string' },
  'certificate-oidc-issuer': { type: 'string' },
  'certificate-oidc-issuer-regexp': { type: 'string' },
  'certificate-identity': { type: 'string' },
  'certificate-identity-regexp': { type: 'string' },
  'plain-http': { type: 'boolean', default: false },
  'ca-file': { type: 'string' },
  'auth-file': { type: 'string' },
  'timeout-ms': { type: 'string', default: '10000' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

class InputError extends Error {}

/** What to trust and how to reach the registry, from the proxy's config. */
function fromConfig(
  file: string,
  namespace: string,
  ref: ImageReference,
): { trust: RuleTrust; settings: VerificationSettings; rule: string } {
  const config = loadConfigFile(file, builtinTypes());
  const entries = config.interceptors.filter((entry) => entry.type === IMAGE_POLICY_TYPE);
  for (const entry of entries) {
    const settings = entry.config as ImagePolicyConfig;
    const { policy, trust } = loadConfiguredPolicy(settings);
    const decision = policy.decide(ref, namespace);
    const found = decision.rule === undefined ? undefined : trust.get(decision.rule.index);
    if (decision.action === 'allow' && found !== undefined && decision.rule !== undefined)
      return { trust: found, settings, rule: decision.rule.name };
  }
  throw new InputError(
    `${file}: no image policy rule with "verify" allows ${ref.normalized}${namespace === '' ? '' : ` in namespace ${namespace}`}`,
  );
}

/** What to trust and how to reach the registry, from the flags. */
function fromFlags(values: Values, ref: ImageReference): { trust: RuleTrust; settings: VerificationSettings } {
  const entries: VerifyEntry[] = [];
  if (values.key !== undefined) entries.push({ keys: values.key });
  const root = values['trusted-root'];
  if (root !== undefined) {
    const issuer = values['certificate-oidc-issuer'];
    const issuerRegExp = values['certificate-oidc-issuer-regexp'];
    const subject = values['certificate-identity'];
    const subjectRegExp = values['certificate-identity-regexp'];
    if ((issuer === undefined) === (issuerRegExp === undefined) || (subject === undefined) === (subjectRegExp === undefined)) {
      throw new UsageError('--trusted-root needs one issuer option and one identity option');
    }
    entries.push({ keyless: { issuer, issuerRegExp, subject, subjectRegExp, trustedRoot: root } });
  }
  if (entries.length === 0) throw new UsageError('name what to trust: --config, --key or --trusted-root');
  const loaded = loadTrust(entries);
  if (!loaded.ok) throw new InputError(loaded.problems.map((p) => p.message).join('\n'));
  const timeout = Number(values['timeout-ms']);
  if (!Number.isInteger(timeout) || timeout < 1) throw new UsageError('--timeout-ms must be a positive integer');
  const settings: VerificationSettings = {
    registries: { [ref.registry]: { plainHttp: values['plain-http'], caFile: values['ca-file'], authFile: values['auth-file'] } },
    stateDir: '',
    registryTimeoutMs: timeout,
    registryConcurrency: 4,
    verifiedCacheSize: 1,
  };
  return { trust: loaded.trust, settings };
}

export const policyVerifyCommand: Command = {
  name: 'policy verify',
  help: {
    usage:
      'policy verify (--config FILE [--namespace NS] | --key FILE... | --trusted-root FILE --certificate-oidc-issuer[-regexp] X --certificate-identity[-regexp] X) [registry options] IMAGE',
    summary: "one signature verification of an image at its registry, as the image policy's verify rules do",
    description: `Verifies IMAGE's signature at its registry now, as the image policy does at PullImage: the tag is resolved
to a digest, the digest's signatures (cosign's .sig tag, sigstore bundles attached as referrers) are checked, and
the result and the signer are printed. Nothing is cached; no proxy or runtime is needed. What is trusted comes
from the rule the proxy's image policy picks for IMAGE (--config), or from keys or a certificate identity.`,
    options: `  --config FILE         the proxy's configuration: the rule its image policy picks for IMAGE (it must have
                        verify), and the policy's registries settings
  --namespace NS        with --config: decide as for a pod in namespace NS
  --key FILE            a PEM public key (repeatable: any of them)
  --trusted-root FILE   a sigstore trusted root (trusted_root.json), for a certificate identity given by:
  --certificate-oidc-issuer X, --certificate-oidc-issuer-regexp X
                        the certificate's issuer, exactly or by regular expression
  --certificate-identity X, --certificate-identity-regexp X
                        the certificate's subject, exactly or by regular expression
  --plain-http          without --config: http instead of https
  --ca-file FILE        without --config: PEM CA certificates trusted for the registry, besides the system's
  --auth-file FILE      without --config: a docker config.json with the registry's credentials
  --timeout-ms MS       without --config: the longest one registry request may take (10000)`,
    exitStatus: {
      OK: 'the image is signed as trusted',
      CHECK_FAILED: 'it is not (the reason is printed), or its registry cannot be asked',
      INPUT_INVALID: 'a key file, trusted root or configuration is unreadable or invalid, or no rule with verify allows IMAGE',
    },
  },
  run: (argv, out) => verifyCommand(argv, out),
};

async function verifyCommand(argv: readonly string[], out: CommandOutput): Promise<number> {
  const { values, positionals } = usageOnError(() =>
    parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: true }),
  );
  const [image, ...extra] = positionals;
  if (image === undefined || extra.length > 0) throw new UsageError('name exactly one IMAGE');
  const spec = classifyImage(image);
  if (spec.kind !== 'reference')
    throw new UsageError(spec.kind === 'id' ? 'an image ID names no registry: give its name' : `IMAGE: ${spec.reason}`);
  const ref = spec.ref;
  let chosen: { trust: RuleTrust; settings: VerificationSettings; rule?: string };
  try {
    chosen = values.config !== undefined ? fromConfig(values.config, values.namespace, ref) : fromFlags(values, ref);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    out.err(`${errorMessage(err)}\n`);
    return ExitCode.INPUT_INVALID;
  }
  let provenance: Provenance;
  try {
    const { settings } = chosen;
    // Loaded here: the sigstore libraries it brings are large, and no other command needs them.
    const { Provenance } = await import('../provenance/provenance');
    provenance = new Provenance({
      registries: settings.registries,
      authFile: settings.authFile,
      requestTimeoutMs: settings.registryTimeoutMs,
      concurrency: settings.registryConcurrency,
      cacheFile: undefined,
      cacheSize: 1,
      onCacheError: () => undefined,
    });
  } catch (err) {
    out.err(`${errorMessage(err)}\n`);
    return ExitCode.INPUT_INVALID;
  }
  try {
    const answer = await provenance.verifyName(chosen.trust, ref, { remember: false });
    const named = `${ref.registry}/${ref.repository}${answer.digest === undefined ? '' : `@${answer.digest}`}`;
    const by = chosen.rule === undefined ? '' : ` (rule "${chosen.rule}")`;
    if (answer.result.ok) {
      const platform = answer.result.signedDigest === answer.digest ? '' : `, through its platform manifest ${answer.result.signedDigest}`;
      out.out(`verified ${named}${by}: signed by ${describeSigner(answer.result.signer)} (${answer.result.format}${platform})\n`);
      return ExitCode.OK;
    }
    out.out(`not verified ${named}${by}: ${answer.result.failure}: ${answer.result.detail}\n`);
    return ExitCode.CHECK_FAILED;
  } finally {
    await provenance.close();
  }
}
