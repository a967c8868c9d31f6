/** The `routing` interceptor's config: rules, handler names per backend, and the limits of its caches and streams. */
import { z } from 'zod';
import type { IssuePath } from '../../config/issues';
import { duplicateNames } from '../../policies/unique-names';
import { isRecord } from '../../values';

const MAX_INT32 = 2 ** 31 - 1;
const ms = (min: number, fallback: number) => z.int().min(min).max(MAX_INT32).default(fallback);

const pattern = z.string().min(1, 'must not be empty; use "" only in runtimeHandlers');
const handlerPattern = z.string();
const keyValues = z
  .record(z.string().min(1, 'keys must not be empty'), z.string())
  .refine((map) => Object.keys(map).length > 0, 'must name at least one key');

const matchSchema = z
  .strictObject({
    runtimeHandlers: z.array(handlerPattern).min(1, 'must list at least one handler; omit it to match any').optional(),
    namespaces: z.array(pattern).min(1, 'must list at least one namespace; omit it to match any').optional(),
    labels: keyValues.optional(),
    annotations: keyValues.optional(),
  })
  .refine((m) => Object.values(m).some((v) => v !== undefined), {
    message: 'must name at least one of runtimeHandlers, namespaces, labels, annotations (pods no rule matches go to the default backend)',
    // A misspelt criterion is reported as the unknown key it is, not also as a missing one.
    when: (payload) => payload.issues.length === 0,
  });

const ruleSchema = z.strictObject({
  name: z.string().min(1).max(63).optional(),
  backend: z.string().min(1),
  match: matchSchema,
});

export const routingConfigSchema = z.strictObject({
  /** First match wins; no match → the default backend. */
  rules: z
    .array(ruleSchema)
    .default([])
    .superRefine(
      (rules, ctx) => {
        for (const { index, message } of duplicateNames(rules, 'rule')) ctx.addIssue({ code: 'custom', path: [index, 'name'], message });
      },
      // Also when a rule is wrong otherwise, so that every problem is reported at once (entries may be invalid).
      { when: (payload) => Array.isArray(payload.value) },
    ),
  /** Per backend: kubelet's RuntimeClass handler → the handler that backend knows ("" = its default). */
  handlers: z.record(z.string().min(1), z.record(z.string(), z.string())).default({}),
  ownership: z
    .strictObject({
      /** Sandboxes, containers and pods remembered (each kind); older entries are found again on demand. */
      cacheSize: z.int().min(16).max(10_000_000).default(10_000),
      /** How long start-up waits for every backend's ListPodSandbox and ListContainers. */
      rebuildTimeoutMs: ms(1, 10_000),
      /** How long asking the backends who owns an unknown ID may take. */
      lookupTimeoutMs: ms(1, 2_000),
    })
    .prefault({}),
  images: z
    .strictObject({
      /** At CreateContainer, pull an image the pod's runtime lacks there first (through the chain after routing). */
      pullOnCreate: z.boolean().default(true),
      /** Image repositories whose credentials (the last kubelet sent with a pull that worked) are kept, in memory. */
      credentialCacheSize: z.int().min(0).max(100_000).default(1000),
    })
    .prefault({}),
  /** The largest answer merged from several runtimes that is sent (kubelet's receive limit); larger ones fail. */
  maxMergedAnswerBytes: z
    .int()
    .min(1024)
    .max(MAX_INT32)
    .default(16 * 1024 * 1024),
  events: z
    .strictObject({
      /** First wait before reconnecting a broken upstream event stream; doubles per failure up to the max. */
      reconnectInitialMs: ms(1, 250),
      reconnectMaxMs: ms(1, 30_000),
      /** A subscriber with this many messages (or bytes) not yet taken is dropped. */
      subscriberBufferMessages: z.int().min(1).max(1_000_000).default(1024),
      subscriberBufferBytes: z
        .int()
        .min(1024)
        .max(MAX_INT32)
        .default(16 * 1024 * 1024),
    })
    .prefault({})
    .refine((e) => e.reconnectMaxMs >= e.reconnectInitialMs, {
      message: 'reconnectMaxMs must not be smaller than reconnectInitialMs',
      path: ['reconnectMaxMs'],
      // Whenever both are numbers, whatever else is wrong in `events`.
      when: (payload) =>
        isRecord(payload.value) && typeof payload.value.reconnectMaxMs === 'number' && typeof payload.value.reconnectInitialMs === 'number',
    }),
});

export type RoutingConfig = z.output<typeof routingConfigSchema>;

export interface RoutingConfigIssue {
  /** Relative to the interceptor's `config`. */
  readonly path: IssuePath;
  readonly message: string;
}

/** Backend names the config (as written, valid or not) uses that the proxy config does not define. */
export function routingBackendIssues(config: unknown, backends: readonly string[]): RoutingConfigIssue[] {
  const known = new Set(backends);
  const expected = `configured backends: ${backends.join(', ')}`;
  const unknown = (name: string): string => `no backend named "${name}" (${expected})`;
  const issues: RoutingConfigIssue[] = [];
  if (!isRecord(config)) return issues;
  const { rules, handlers } = config;
  if (Array.isArray(rules)) {
    rules.forEach((rule: unknown, i) => {
      const backend = isRecord(rule) ? rule.backend : undefined;
      if (typeof backend === 'string' && backend !== '' && !known.has(backend)) {
        issues.push({ path: ['rules', i, 'backend'], message: unknown(backend) });
      }
    });
  }
  if (isRecord(handlers)) {
    for (const backend of Object.keys(handlers))
      if (!known.has(backend)) issues.push({ path: ['handlers', backend], message: unknown(backend) });
  }
  return issues;
}
