/**
 * `Status` of the node as one runtime: each condition combined over the backends, the union of their runtime
 * handlers (under the names kubelet uses), the features all of them have, and a condition of its own while their
 * RuntimeConfig answers disagree. How a condition that differs between backends is reported is documented in
 * docs/routing.md.
 */
import { GrpcStatus, ProxyError, errorMessage } from '../../errors';
import { decodeMessage, encodeMessage, messageType, type DecodedMessage } from '../../messages/codec';
import { lengthDelimited, messageAt, replaceStringAt, stringAt, wireFields, WireFormatError } from '../../messages/protobuf-wire';
import type { NamedReply } from './backend-call';
import { callEvery, failuresOf, fanOutFailure, statusName, type BuiltAnswer, type FanOutCall } from './fan-out';
import { overLimit, type AnswerLimit } from './node-wide';
import { askRuntimeConfigs, RUNTIME_CONFIG_CONDITION, RUNTIME_CONFIG_MISMATCH, type RuntimeConfigs } from './runtime-config';

const RESPONSE = 'runtime.v1.StatusResponse';
const RUNTIME_STATUS = 'runtime.v1.RuntimeStatus';
const STATUS_FIELD = 1;
const FEATURES_FIELD = 4;
/** Conditions kubelet requires: a backend that does not report one (or does not answer) counts as false. */
const REQUIRED = ['RuntimeReady', 'NetworkReady'] as const;
const HANDLERS_FIELD = 3;

interface Condition {
  readonly type: string;
  readonly status: boolean;
  readonly reason: string;
  readonly message: string;
}

interface Answered {
  readonly backend: string;
  readonly body: Buffer;
  readonly decoded: DecodedMessage;
}

/** The kubelet names a backend's handler is reported under. */
export type HandlerNames = (backend: string, handler: string) => readonly string[];

function conditionsOf(decoded: DecodedMessage): Condition[] {
  const status = decoded['status'] as { conditions?: unknown } | undefined;
  const list = Array.isArray(status?.conditions) ? (status.conditions as Record<string, unknown>[]) : [];
  return list.map((c) => ({
    type: typeof c['type'] === 'string' ? c['type'] : '',
    status: c['status'] === true,
    reason: typeof c['reason'] === 'string' ? c['reason'] : '',
    message: typeof c['message'] === 'string' ? c['message'] : '',
  }));
}

/** True only where every backend that has a say is true; the false ones are named in the message. */
function combine(type: string, views: readonly { backend: string; condition: Condition }[]): Condition {
  const falses = views.filter((v) => !v.condition.status);
  const [first] = falses;
  if (first === undefined) {
    const lead = views[0]?.condition;
    return { type, status: true, reason: lead?.reason ?? '', message: lead?.message ?? '' };
  }
  const message = falses
    .map((v) => `backend "${v.backend}": ${v.condition.message || v.condition.reason || `${type} is false`}`)
    .join('; ');
  return { type, status: false, reason: first.condition.reason || 'BackendNotReady', message };
}

function mergedConditions(
  answered: readonly Answered[],
  unanswered: readonly { backend: string; code: number; message: string }[],
): Condition[] {
  const per = answered.map((a) => ({ backend: a.backend, conditions: conditionsOf(a.decoded) }));
  const types = [...new Set([...per.flatMap((p) => p.conditions.map((c) => c.type)), ...REQUIRED])];
  return types.map((type) => {
    const required = (REQUIRED as readonly string[]).includes(type);
    const views = per.flatMap(({ backend, conditions }) => {
      const condition = conditions.find((c) => c.type === type);
      if (condition !== undefined) return [{ backend, condition }];
      if (!required) return [];
      return [{ backend, condition: { type, status: false, reason: 'ConditionNotReported', message: `does not report ${type}` } }];
    });
    if (required) {
      for (const u of unanswered) {
        const message = `did not answer Status: ${statusName(u.code)}: ${u.message}`;
        views.push({ backend: u.backend, condition: { type, status: false, reason: 'BackendUnavailable', message } });
      }
    }
    return combine(type, views);
  });
}

/** Only the fields that differ from their default, as a runtime's own encoder would write them. */
function asProto3(condition: Condition): Record<string, unknown> {
  return Object.fromEntries(Object.entries(condition).filter(([, v]) => v !== '' && v !== false));
}

/**
 * A feature is claimed only when every backend that answered claims it, compared on the wire: an entry of
 * `features` is kept, as its bytes, when every answer has the very same entry, so flags a newer runtime adds (that
 * this schema does not know) survive when every backend has them.
 */
function mergedFeatures(answered: readonly Answered[]): Buffer | undefined {
  const entriesOf = (a: Answered): Buffer[] => {
    const features = messageAt(a.body, [FEATURES_FIELD]);
    return features === undefined ? [] : wireFields(features).map((f) => features.subarray(f.start, f.end));
  };
  const [first, ...others] = answered.map(entriesOf);
  const kept = (first ?? []).filter((entry) => others.every((entries) => entries.some((e) => e.equals(entry))));
  return kept.length === 0 ? undefined : lengthDelimited(FEATURES_FIELD, Buffer.concat(kept));
}

/** The default backend's info as it is; the others' under `<backend>/<key>`. */
function mergedInfo(answered: readonly Answered[], defaultBackend: string): Record<string, string> {
  const info: Record<string, string> = {};
  for (const a of answered) {
    const entries = Object.entries((a.decoded['info'] as Record<string, unknown> | undefined) ?? {});
    for (const [key, value] of entries)
      if (typeof value === 'string') info[a.backend === defaultBackend ? key : `${a.backend}/${key}`] = value;
  }
  return info;
}

/** Each backend's handler entries as it sent them, renamed to kubelet's names; a name already given is skipped. */
function mergedHandlers(answered: readonly Answered[], names: HandlerNames): Buffer[] {
  const given = new Set<string>();
  const out: Buffer[] = [];
  for (const a of answered) {
    for (const f of wireFields(a.body)) {
      if (f.number !== HANDLERS_FIELD) continue;
      const item = a.body.subarray(f.valueStart, f.end);
      const own = stringAt(item, [1]) ?? '';
      const aliases = names(a.backend, own);
      for (const name of aliases.length > 0 ? aliases : [own]) {
        if (given.has(name)) continue;
        given.add(name);
        out.push(name === own ? a.body.subarray(f.start, f.end) : lengthDelimited(HANDLERS_FIELD, replaceStringAt(item, [1], name)));
      }
    }
  }
  return out;
}

/** Fields of `message` (of `type`) that this schema does not know, kept as they were. */
function unknownFields(type: string, message: Buffer | undefined): Buffer[] {
  if (message === undefined) return [];
  const known = messageType(type).fieldsById;
  return wireFields(message)
    .filter((f) => known[f.number] === undefined)
    .map((f) => message.subarray(f.start, f.end));
}

/** The combined conditions, and whatever else the default backend's RuntimeStatus holds that this schema does not know. */
function mergedRuntimeStatus(conditions: readonly Condition[], primary: Answered | undefined): Buffer {
  const known = encodeMessage(RUNTIME_STATUS, { conditions: conditions.map(asProto3) });
  const unknown = unknownFields(RUNTIME_STATUS, primary === undefined ? undefined : messageAt(primary.body, [STATUS_FIELD]));
  return lengthDelimited(STATUS_FIELD, Buffer.concat([known, ...unknown]));
}

/**
 * One Status from every backend's answer (in backend order, the default first: its words win), built at the wire
 * level: handlers, features and the fields this schema does not know are carried as the runtimes sent them.
 * `extra` conditions (the proxy's own findings) come after the combined ones.
 */
export function mergeStatus(replies: readonly NamedReply[], names: HandlerNames, extra: readonly Condition[] = []): BuiltAnswer {
  const answeredReplies = replies.filter((r) => r.reply.code === GrpcStatus.OK);
  if (answeredReplies.length === 0) return fanOutFailure('Status', failuresOf(replies));
  const answered = answeredReplies.map(({ backend, reply }): Answered => {
    const body = reply.body ?? Buffer.alloc(0);
    try {
      return { backend, body, decoded: decodeMessage(RESPONSE, body) };
    } catch (err) {
      throw new ProxyError('UPSTREAM_PROTOCOL', `backend "${backend}" sent a malformed ${RESPONSE}: ${errorMessage(err)}`, { cause: err });
    }
  });
  const defaultBackend = replies[0]?.backend ?? '';
  const primary = answered.find((a) => a.backend === defaultBackend);
  const conditions = [...mergedConditions(answered, failuresOf(replies)), ...extra];
  let parts: Buffer[];
  try {
    const features = mergedFeatures(answered);
    parts = [
      mergedRuntimeStatus(conditions, primary),
      encodeMessage(RESPONSE, { info: mergedInfo(answered, defaultBackend) }),
      ...mergedHandlers(answered, names),
      ...(features === undefined ? [] : [features]),
      ...unknownFields(RESPONSE, primary?.body),
    ];
  } catch (err) {
    if (!(err instanceof WireFormatError)) throw err;
    throw new ProxyError('UPSTREAM_PROTOCOL', `a backend sent a malformed ${RESPONSE}: ${err.message}`, { cause: err });
  }
  return { code: GrpcStatus.OK, message: '', body: Buffer.concat(parts) };
}

/** The condition `Status` carries while the backends disagree on RuntimeConfig. */
function runtimeConfigCondition(disagreement: string | undefined): Condition[] {
  if (disagreement === undefined) return [];
  return [{ type: RUNTIME_CONFIG_CONDITION, status: false, reason: RUNTIME_CONFIG_MISMATCH, message: disagreement }];
}

/**
 * Status of every backend, combined, with what their RuntimeConfig answers (asked at the same time) show; fails
 * only when no backend answers Status. `onConfigs` learns what RuntimeConfig showed.
 */
export async function mergedStatus(
  c: FanOutCall,
  path: string,
  request: Buffer,
  names: HandlerNames,
  onConfigs: (configs: RuntimeConfigs) => void,
  limit?: AnswerLimit,
): Promise<BuiltAnswer> {
  const [replies, configs] = await Promise.all([callEvery(c, c.backends, path, request), askRuntimeConfigs(c).catch(() => undefined)]);
  if (configs !== undefined) onConfigs(configs);
  const answer = mergeStatus(replies, names, runtimeConfigCondition(configs?.disagreement));
  return (limit === undefined ? undefined : overLimit('Status', answer, replies, limit)) ?? answer;
}
