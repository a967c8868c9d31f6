/** Zod schemas of image policy rules, shared by inline config and rules files so both report the same way. */
import { z } from 'zod';
import { isRecord } from '../values';
import { duplicateNames } from './unique-names';
import { compileImagePattern, compileNamespacePattern, POLICY_ACTIONS, POLICY_MODES } from './image-rules';

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

const ruleSchema = z
  .strictObject({
    name: z.string().min(1, 'must not be empty'),
    match: z.strictObject({ images: z.array(imagePatternSchema).min(1, 'must list at least one image pattern') }),
    namespaces: z.array(namespacePatternSchema).min(1, 'must list at least one namespace; omit it to match all').optional(),
    action: policyActionSchema,
    constraints: z.strictObject({ denyLatest: z.boolean().default(false), requireDigest: z.boolean().default(false) }).optional(),
  })
  .superRefine(
    (rule, ctx) => {
      // A deny rule denies whatever it matches, so a constraint on it could only mislead.
      if (rule.action === 'deny' && rule.constraints !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['constraints'], message: 'constraints apply to allow rules only' });
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
