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
import { Provenance } from '../provenance/provenance';
import { loadTrust, type RuleTrust } from '../provenance/trust';
import { builtinTypes } from './builtin-types';
import { ExitCode, exitCodesHelp } from './exit-codes';
import { processOutput, type CommandOutput } from './output';

const USAGE = `cri-proxy policy verify --config FILE [--namespace NS] IMAGE
       cri-proxy policy verify (--key FILE... | --trusted-root FILE --certificate-oidc-issuer[-regexp] X --certificate-identity[-regexp] X)
                               [--plain-http] [--ca-file FILE] [--auth-file FILE] [--timeout-ms MS] IMAGE`;

const HELP = `Verifies IMAGE's signature at its registry now, as the image policy does at PullImage: the tag is resolved to
a digest, the digest's signatures (cosign's .sig tag, sigstore bundles attached as referrers) are checked, and the
result and the signer are printed. Nothing is cached and no proxy or runtime is needed.

What is trusted:
  --config FILE                     the rule the proxy's image policy picks for IMAGE (it must have verify), and the
                                    policy's registries settings; with --namespace NS for namespace-scoped rules
  --key FILE                        a PEM public key (repeatable: any of them)
  --trusted-root FILE               a sigstore trusted root (trusted_root.json), for a certificate identity:
  --certificate-oidc-issuer X       the identity's issuer (or --certificate-oidc-issuer-regexp)
  --certificate-identity X          the certificate's subject (or --certificate-identity-regexp)

How the registry is reached (without --config):
  --plain-http                      http instead of https
  --ca-file FILE                    PEM CA certificates trusted for the registry, besides the system's
  --auth-file FILE                  a docker config.json with the registry's credentials
  --timeout-ms MS                   the longest one registry request may take (10000)

${exitCodesHelp(['OK', 'CHECK_FAILED', 'USAGE', 'INPUT_INVALID'])}`;

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
  help: { type: 'boolean', short: 'h' },
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
      throw new TypeError('--trusted-root needs one issuer option and one identity option');
    }
    entries.push({ keyless: { issuer, issuerRegExp, subject, subjectRegExp, trustedRoot: root } });
  }
  if (entries.length === 0) throw new TypeError('name what to trust: --config, --key or --trusted-root');
  const loaded = loadTrust(entries);
  if (!loaded.ok) throw new InputError(loaded.problems.map((p) => p.message).join('\n'));
  const timeout = Number(values['timeout-ms']);
  if (!Number.isInteger(timeout) || timeout < 1) throw new TypeError('--timeout-ms must be a positive integer');
  const settings: VerificationSettings = {
    registries: { [ref.registry]: { plainHttp: values['plain-http'], caFile: values['ca-file'], authFile: values['auth-file'] } },
    stateDir: '',
    registryTimeoutMs: timeout,
    registryConcurrency: 4,
    verifiedCacheSize: 1,
  };
  return { trust: loaded.trust, settings };
}

export async function runPolicyVerify(argv: readonly string[], out: CommandOutput = processOutput): Promise<number> {
  const usage = (problem: string): number => {
    out.err(`cri-proxy policy verify: ${problem}\nUsage: ${USAGE}\n`);
    return ExitCode.USAGE;
  };
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: true });
  } catch (err) {
    return usage(errorMessage(err).split(/\.\s/)[0] ?? 'invalid arguments');
  }
  const { values, positionals } = parsed;
  if (values.help === true) {
    out.out(`Usage: ${USAGE}\n\n${HELP}`);
    return ExitCode.OK;
  }
  const [image, ...extra] = positionals;
  if (image === undefined || extra.length > 0) return usage('name exactly one IMAGE');
  const spec = classifyImage(image);
  if (spec.kind !== 'reference')
    return usage(spec.kind === 'id' ? 'an image ID names no registry: give its name' : `IMAGE: ${spec.reason}`);
  const ref = spec.ref;
  let chosen: { trust: RuleTrust; settings: VerificationSettings; rule?: string };
  try {
    chosen = values.config !== undefined ? fromConfig(values.config, values.namespace, ref) : fromFlags(values, ref);
  } catch (err) {
    if (err instanceof TypeError) return usage(err.message);
    out.err(`${errorMessage(err)}\n`);
    return ExitCode.INPUT_INVALID;
  }
  let provenance: Provenance;
  try {
    const { settings } = chosen;
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
