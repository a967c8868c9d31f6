import { isAbsolute } from 'node:path';
import { z } from 'zod';
import { MAX_INT32 } from '../values';
import { readAuditKey } from '../audit/key-file';
import { buildRecord, compileRedactor } from '../audit/record';
import type { Redactor } from '../audit/workload-details';
import { acquireAuditWriter } from '../audit/shared-writer';
import { AuditTimeoutError, type AuditIo } from '../audit/writer';
import { defineInterceptorType, type InterceptorDeps } from '../chain/interceptor-types';
import { GrpcStatus, ProxyError, errorMessage } from '../errors';
import { ensureCounter } from '../metrics/registry';
import type { Scheduler } from '../scheduler';
import { policyDecisionKey } from '../policies/decision-key';
import type { CallContext, CallOutcome, Interceptor, MethodInfo } from '../chain/types';
import { ownCallsOf } from '../chain/own-call';
import { METRIC } from '../metrics/names';
import type { DecodedMessage } from '../messages/codec';

const MIB = 1024 * 1024;
const keyGlob = z.string().min(1, 'must not be empty');

export const auditConfigSchema = z.strictObject({
  /** The live log file; rotated files sit beside it as `<path>.1` … `<path>.<keep>`. */
  path: z.string().min(1, 'must not be empty').refine(isAbsolute, 'must be an absolute path'),
  /** Also record calls that change nothing (List*, *Status, …): kubelet polls those constantly. */
  includeReads: z.boolean().default(false),
  fsync: z.enum(['record', 'interval']).default('record'),
  fsyncIntervalMs: z.int().min(1).max(MAX_INT32).default(1000),
  queueSize: z.int().min(1).max(1_000_000).default(10_000),
  whenFull: z.enum(['block', 'drop']).default('block'),
  /** The longest a call waits for its record: for room in the queue (whenFull: block), then for the write. */
  writeTimeoutMs: z.int().min(1).max(MAX_INT32).default(10_000),
  /** A keyed chain: records carry an HMAC-SHA256 with this file's key (read at start and on reload). */
  keyFile: z
    .string()
    .min(1, 'must not be empty')
    .superRefine((file, ctx) => {
      // Reading the key here makes `config validate`, startup and SIGHUP all reject a missing or exposed key.
      try {
        readAuditKey(file);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: `${file}: ${errorMessage(err)}` });
      }
    })
    .optional(),
  /** Where the chain stands is logged this often (if it moved), for a copy of the logs kept off the node; 0 never. */
  headLogIntervalMs: z.int().min(0).max(MAX_INT32).default(60_000),
  rotate: z
    .strictObject({
      maxBytes: z
        .int()
        .min(1024)
        .default(100 * MIB),
      keep: z.int().min(1).max(1000).default(10),
    })
    .prefault({}),
  redact: z
    .strictObject({
      annotationKeys: z.array(keyGlob).default([]),
      labelKeys: z.array(keyGlob).default([]),
    })
    .prefault({}),
});

export type AuditConfig = z.output<typeof auditConfigSchema>;

/** For tests: replace the writer's I/O to stall or break it, and its timers. */
export interface AuditTestHooks {
  readonly io?: Partial<AuditIo>;
  readonly scheduler?: Scheduler;
}

const LABELS = ['interceptor'] as const;

/**
 * Writes one hash-chained JSON line per mutating call (and per read with includeReads), after the call has
 * run, so the outcome is in the record. The call's status goes out only once its record is written: a
 * failed write fails the call (failClosed) rather than letting it go unrecorded.
 */
export function createAuditInterceptor(config: AuditConfig, deps: InterceptorDeps, hooks: AuditTestHooks = {}): Interceptor {
  const redactor = compileRedactor(config.redact);
  const labels = { interceptor: deps.name };
  const counter = (name: string, help: string) => ensureCounter(deps.registry, { name, help, labelNames: LABELS });
  const records = counter(METRIC.auditRecordsTotal, 'Audit records written');
  const dropped = counter(METRIC.auditDroppedTotal, 'Audit records dropped because the queue was full (whenFull: drop)');
  const writeErrors = counter(METRIC.auditWriteErrorsTotal, 'Failed writes, fsyncs or rotations of the audit log');
  const timeouts = counter(METRIC.auditTimeoutsTotal, 'Calls failed because their audit record was not written within writeTimeoutMs');
  const rollbacks = ensureCounter(deps.registry, {
    name: METRIC.auditRollbacksTotal,
    help: 'Rollbacks of failed audit writes, by result: rolled_back (cut back to the last record) or failed (retried before the next write, which marks the bytes if that fails too)',
    labelNames: ['interceptor', 'result'] as const,
  });
  for (const c of [records, dropped, writeErrors, timeouts]) c.inc(labels, 0);
  for (const result of ['rolled_back', 'failed']) rollbacks.inc({ ...labels, result }, 0);
  const lease = acquireAuditWriter({
    path: config.path,
    fsync: config.fsync,
    fsyncIntervalMs: config.fsyncIntervalMs,
    queueSize: config.queueSize,
    whenFull: config.whenFull,
    timeoutMs: config.writeTimeoutMs,
    maxBytes: config.rotate.maxBytes,
    keep: config.rotate.keep,
    key: config.keyFile === undefined ? undefined : readAuditKey(config.keyFile),
    headLogIntervalMs: config.headLogIntervalMs,
    log: deps.log,
    onError: () => writeErrors.inc(labels),
    onRollback: (rolledBack) => rollbacks.inc({ ...labels, result: rolledBack ? 'rolled_back' : 'failed' }),
    onTimeout: () => timeouts.inc(labels),
    ...(hooks.io ? { io: hooks.io } : {}),
    ...(hooks.scheduler ? { scheduler: hooks.scheduler } : {}),
  });
  // Unknown methods (a newer CRI) might change state, so they are recorded too, without decoding.
  const recorded = (m: MethodInfo): boolean => config.includeReads || m.mutating || !m.known;

  /** Own calls recorded already (an audit entry after their maker sees them in the chain as well). */
  const ownRecorded = new WeakSet<CallContext>();
  /** Writes one record; a failure to write fails the call with a coded error. */
  const write = async (fields: Record<string, unknown>): Promise<void> => {
    let result;
    try {
      result = await lease.writer.append(fields);
    } catch (err) {
      if (err instanceof AuditTimeoutError)
        throw new ProxyError('AUDIT_TIMEOUT', `cri-proxy: audit log write timed out: ${err.message}`, { cause: err });
      throw new ProxyError('AUDIT_WRITE_FAILED', `cri-proxy: audit log write failed: ${errorMessage(err)}`, { cause: err });
    }
    (result === 'dropped' ? dropped : records).inc(labels);
  };

  return {
    name: deps.name,
    // The chain enters it only for recorded methods.
    appliesTo: recorded,
    async intercept(ctx, next) {
      if (ctx.onBehalfOf !== undefined) ownRecorded.add(ctx);
      // Read before forwarding: afterwards the request bytes are gone.
      const request = await readRequest(ctx);
      let failed = false;
      let failure: unknown;
      try {
        await next();
      } catch (err) {
        failed = true;
        failure = err;
      }
      try {
        // Calls interceptors after this one made on the call's behalf (routing's pulls), in the order they were made.
        for (const own of ownCallsOf(ctx)) {
          if (ownRecorded.has(own) || !recorded(own.method)) continue;
          ownRecorded.add(own);
          await write(recordOf(own, await readRequest(own), undefined, redactor));
        }
        await write(recordOf(ctx, request, failed ? failure : undefined, redactor));
      } catch (err) {
        // The call fails anyway; the write error is counted and logged by the writer.
        if (failed) throw failure;
        throw err;
      }
      if (failed) throw failure;
    },
    close: () => lease.release(),
  };
}

interface RequestRead {
  readonly message?: DecodedMessage | undefined;
  readonly error?: string;
}

async function readRequest(ctx: CallContext): Promise<RequestRead> {
  if (!ctx.method.known) return {};
  try {
    return { message: await ctx.request() };
  } catch (err) {
    // Still recorded: a mutating call is then refused (INVALID_ARGUMENT) before the runtime, a read forwarded.
    return { error: errorMessage(err) };
  }
}

function recordOf(ctx: CallContext, request: RequestRead, failure: unknown, redactor: Redactor): Record<string, unknown> {
  const outcome = outcomeOf(ctx, failure);
  const time = new Date();
  const durationMs = Number(process.hrtime.bigint() - ctx.startedAt) / 1e6;
  try {
    return buildRecord(
      {
        method: ctx.method,
        request: request.message,
        requestError: request.error,
        response: responseOf(ctx, outcome),
        outcome,
        durationMs,
        backend: ctx.backend,
        decision: ctx.state.get(policyDecisionKey),
        onBehalfOf: ctx.onBehalfOf === undefined ? undefined : { method: ctx.onBehalfOf.call.method.name, by: ctx.onBehalfOf.by },
        time,
      },
      redactor,
    );
  } catch (err) {
    // Never lose the record over a field we could not read: keep what is certain.
    return {
      time: time.toISOString(),
      method: ctx.method.path,
      outcome: { code: outcome.code },
      durationMs,
      recordError: errorMessage(err),
    };
  }
}

function outcomeOf(ctx: CallContext, failure: unknown): CallOutcome {
  if (failure === undefined && ctx.outcome) return ctx.outcome;
  const code = failure instanceof ProxyError ? failure.grpcStatus : GrpcStatus.INTERNAL;
  return { code, message: failure === undefined ? 'the call ended without an outcome' : errorMessage(failure), fromProxy: true };
}

function responseOf(ctx: CallContext, outcome: CallOutcome): DecodedMessage | undefined {
  // Decoding a response costs; only methods whose response names an object are worth it.
  if (outcome.code !== GrpcStatus.OK || Object.keys(ctx.method.responseFields).length === 0) return undefined;
  try {
    return ctx.response();
  } catch {
    return undefined;
  }
}

export const auditInterceptorType = defineInterceptorType({
  name: 'audit',
  schema: auditConfigSchema,
  create: (config, deps) => createAuditInterceptor(config, deps),
  pathKeys: ['keyFile'],
  observesEveryCall: 'the audit log would miss the calls it ends',
});
