/** The image-policy interceptor's config schema: the policy (inline or a rules file) and signature verification's settings. */
import { z } from 'zod';
import { isRecord, MAX_INT32 } from '../../values';
import { DEFAULT_ACTION, DEFAULT_MODE, loadPolicyTrust, readPolicyFile, type PolicyConfig } from './policy-file';
import { policyActionSchema, policyModeSchema, rulesSchema } from '../../policies/policy-schema';
import { verificationSettings } from './provenance-config';

export const imagePolicySchema = z
  .strictObject({
    mode: policyModeSchema.optional(),
    defaultAction: policyActionSchema.optional(),
    rules: rulesSchema.optional(),
    rulesFile: z.string().min(1, 'must not be empty').optional(),
    imageStatusTimeoutMs: z.int().min(1).max(MAX_INT32).default(2000),
    cacheSize: z.int().min(1).max(10_000_000).default(1000),
    /** When an image ID's names cannot be looked up (the runtime fails or times out): deny the call, or allow it. */
    whenLookupFails: z.enum(['deny', 'allow']).optional(),
    /** The old name of whenLookupFails (true: allow); still read, with a warning (see deprecatedKeys). */
    failOpen: z.boolean().optional(),
    ...verificationSettings,
  })
  .superRefine(
    (config, ctx) => {
      if (config.failOpen !== undefined && config.whenLookupFails !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['failOpen'], message: 'the old name of "whenLookupFails"; set only whenLookupFails' });
      }
      if ((config.rules === undefined) === (config.rulesFile === undefined)) {
        ctx.addIssue({ code: 'custom', message: 'set exactly one of "rules" (an inline policy) or "rulesFile"' });
        return;
      }
      // Reading the files here makes `config validate`, startup and SIGHUP all reject a bad policy or key file.
      if (config.rulesFile === undefined) {
        const rules = rulesSchema.safeParse(config.rules);
        if (!rules.success) return;
        for (const problem of loadPolicyTrust(rules.data, undefined).problems) {
          ctx.addIssue({ code: 'custom', path: ['rules', ...problem.path], message: problem.message });
        }
        return;
      }
      if (typeof config.rulesFile !== 'string') return;
      const result = readPolicyFile(config.rulesFile, validPolicySettings(config));
      if (result.ok) return;
      for (const problem of result.problems) {
        ctx.addIssue({ code: 'custom', path: ['rulesFile'], message: `${config.rulesFile}: ${problem}` });
      }
    },
    // Also when other keys are wrong, so that the file's problems are reported with theirs (the values may be invalid).
    { when: (payload) => isRecord(payload.value) },
  )
  // With inline rules the defaults are filled in here, so that `config print` shows them; a rules file sets its own.
  // The old failOpen key stays in the output, so that its use can be reported (see deprecatedKeys).
  .transform(({ whenLookupFails, ...config }) => {
    const lookup = { whenLookupFails: whenLookupFails ?? (config.failOpen === true ? ('allow' as const) : ('deny' as const)) };
    return config.rulesFile !== undefined
      ? { ...config, ...lookup }
      : { ...config, mode: config.mode ?? DEFAULT_MODE, defaultAction: config.defaultAction ?? DEFAULT_ACTION, ...lookup };
  });

/** `mode` and `defaultAction` of a config that may be invalid elsewhere, each where it is valid. */
function validPolicySettings(config: { mode?: unknown; defaultAction?: unknown }): PolicyConfig {
  const mode = policyModeSchema.safeParse(config.mode);
  const defaultAction = policyActionSchema.safeParse(config.defaultAction);
  return { mode: mode.success ? mode.data : undefined, defaultAction: defaultAction.success ? defaultAction.data : undefined };
}

export type ImagePolicyConfig = z.output<typeof imagePolicySchema>;
