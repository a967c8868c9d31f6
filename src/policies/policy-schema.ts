/** Zod schemas of image policy rules, shared by inline config and rules files so both report the same way. */
import { z } from 'zod';
import { isRecord } from '../values';
import { duplicateNames } from './unique-names';
import { compileImagePattern, compileNamespacePattern, POLICY_ACTIONS, POLICY_MODES, UNVERIFIABLE_ACTIONS } from './image-rules';

export const policyModeSchema = z.enum(POLICY_MODES);
export const policyActionSchema = z.enum(POLICY_ACTIONS);

const imagePatternSchema = z.string().superRefine((pattern, ctx) => {
  const result = compileImagePattern(pattern);
  if (!result.ok) ctx.addIssue({ code: 'custom', message: result.reason });
});

const namespacePatternSchema = z.string().superRefine((pattern, ctx) => {
  const result = compileNamespacePattern(pattern);
  if (!result.ok) ctx.addIssue({ code: 'custom', message: result.reason });
});

const nonEmpty = z.string().min(1, 'must not be empty');

const regExpSchema = z.string().superRefine((source, ctx) => {
  try {
    new RegExp(source, 'u');
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `not a valid regular expression: ${err instanceof Error ? err.message : String(err)}` });
  }
});

/** Exactly one of two keys: `issuer` or `issuerRegExp`, `subject` or `subjectRegExp`, `keys` or `keyless`. */
function exactlyOne(value: Record<string, unknown>, a: string, b: string, ctx: z.RefinementCtx): void {
  if ((value[a] === undefined) === (value[b] === undefined)) {
    ctx.addIssue({ code: 'custom', message: `set exactly one of "${a}" and "${b}"` });
  }
}

const keylessSchema = z
  .strictObject({
    issuer: nonEmpty.optional(),
    issuerRegExp: regExpSchema.optional(),
    subject: nonEmpty.optional(),
    subjectRegExp: regExpSchema.optional(),
    trustedRoot: nonEmpty,
  })
  .superRefine((entry, ctx) => {
    exactlyOne(entry, 'issuer', 'issuerRegExp', ctx);
    exactlyOne(entry, 'subject', 'subjectRegExp', ctx);
  });

/** One entry of a rule's `verify`: public keys, or a keyless (Fulcio certificate) identity. */
export const verifyEntrySchema = z
  .strictObject({
    keys: z.array(nonEmpty).min(1, 'must list at least one public key file').optional(),
    keyless: keylessSchema.optional(),
  })
  .superRefine((entry, ctx) => exactlyOne(entry, 'keys', 'keyless', ctx));

const ruleSchema = z
  .strictObject({
    name: z.string().min(1, 'must not be empty'),
    match: z.strictObject({ images: z.array(imagePatternSchema).min(1, 'must list at least one image pattern') }),
    namespaces: z.array(namespacePatternSchema).min(1, 'must list at least one namespace; omit it to match all').optional(),
    action: policyActionSchema,
    constraints: z.strictObject({ denyLatest: z.boolean().default(false), requireDigest: z.boolean().default(false) }).optional(),
    verify: z.array(verifyEntrySchema).min(1, 'must list at least one entry; omit it to allow unsigned images').optional(),
    onUnverifiable: z.enum(UNVERIFIABLE_ACTIONS).optional(),
  })
  .superRefine(
    (rule, ctx) => {
      // A deny rule denies whatever it matches, so a constraint or a signature check on it could only mislead.
      const allowOnly = { constraints: 'constraints apply to allow rules only', verify: 'verify applies to allow rules only' };
      for (const [key, message] of Object.entries(allowOnly)) {
        if (rule.action === 'deny' && rule[key as keyof typeof allowOnly] !== undefined)
          ctx.addIssue({ code: 'custom', path: [key], message });
      }
      if (rule.onUnverifiable !== undefined && rule.verify === undefined) {
        ctx.addIssue({ code: 'custom', path: ['onUnverifiable'], message: 'applies only to a rule with "verify"' });
      }
    },
    // Also when the rule is wrong elsewhere, so that every problem is reported at once.
    { when: (payload) => isRecord(payload.value) },
  );

/** Rules in file order; names are unique because denials name the rule. */
export const rulesSchema = z.array(ruleSchema).superRefine(
  (rules, ctx) => {
    for (const { index, message } of duplicateNames(rules, 'rule')) ctx.addIssue({ code: 'custom', path: [index, 'name'], message });
  },
  // Also when a rule is wrong otherwise, so that every problem is reported at once (entries may be invalid).
  { when: (payload) => Array.isArray(payload.value) },
);

/** The content of a `rulesFile`. */
export const policyFileSchema = z.strictObject({
  mode: policyModeSchema.optional(),
  defaultAction: policyActionSchema.optional(),
  rules: rulesSchema,
});

export type PolicyFileContent = z.output<typeof policyFileSchema>;
