import { GrpcStatus } from '../errors';
import { globMatcher } from '../policies/glob';
import type { CallOutcome, CriField, MethodInfo } from '../chain/types';
import { REDACTED } from '../values';
import type { DecodedMessage } from '../messages/codec';
import { fieldAt } from '../messages/field-at';
import { grpcCodeName } from '../metrics/registry';
import { MAX_LIST, clip, compact, flag, list, num, obj, set, str, stringMap, strings } from './record-values';
import { containerDetails, restoredContainer, sandboxDetails, type Redactor } from './workload-details';

/**
 * Key patterns redacted whatever the config says: kubectl's last-applied annotation holds the whole pod spec
 * (env values included), and keys named like credentials hold them more often than not.
 */
export const BUILTIN_REDACTED_KEYS: readonly string[] = [
  'kubectl.kubernetes.io/last-applied-configuration',
  '*password*',
  '*passwd*',
  '*secret*',
  '*token*',
  '*credential*',
  '*apikey*',
  '*api-key*',
  '*private-key*',
];

/** Key globs (see policies/glob.ts), compared case-insensitively since key spelling varies. */
export function compileRedactor(config: { readonly annotationKeys: readonly string[]; readonly labelKeys: readonly string[] }): Redactor {
  const options = { caseInsensitive: true };
  return {
    annotation: globMatcher([...BUILTIN_REDACTED_KEYS, ...config.annotationKeys], options),
    label: globMatcher([...BUILTIN_REDACTED_KEYS, ...config.labelKeys], options),
  };
}

export interface RecordInput {
  readonly method: MethodInfo;
  readonly request: DecodedMessage | undefined;
  /** Why the request could not be decoded, if it could not. */
  readonly requestError: string | undefined;
  readonly response: DecodedMessage | undefined;
  readonly outcome: CallOutcome;
  readonly durationMs: number;
  readonly backend: string | undefined;
  /** Whatever the image policy left on ctx.state; only its known fields are copied. */
  readonly decision: unknown;
  /** For a call an interceptor made itself: the client's call it was made for, and the interceptor. */
  readonly onBehalfOf?: { readonly method: string; readonly by: string } | undefined;
  readonly time: Date;
}

/** The curated fields of one audit record (seq, prev and hash are added by the writer). */
export function buildRecord(input: RecordInput, redactor: Redactor): Record<string, unknown> {
  const { method, request, response } = input;
  const id = (field: CriField): string | undefined => {
    const reqPath = method.requestFields[field];
    const resPath = method.responseFields[field];
    return (
      (reqPath === undefined ? undefined : fieldAt(request, reqPath)) || (resPath === undefined ? undefined : fieldAt(response, resPath))
    );
  };
  const record: Record<string, unknown> = { time: input.time.toISOString(), method: method.known ? method.name : method.path };
  if (input.onBehalfOf !== undefined) Object.assign(record, { onBehalfOf: input.onBehalfOf.method, madeBy: input.onBehalfOf.by });
  const pod = compact({ namespace: id('podNamespace'), name: id('podName'), uid: id('podUid') });
  if (pod) record.pod = pod;
  const container = compact({ name: id('containerName'), id: id('containerId') });
  if (container) record.container = container;
  set(record, 'sandboxId', id('sandboxId'));
  set(record, 'image', id('image'));
  if (method.name === 'PullImage') set(record, 'imageRef', fieldAt(response, 'image_ref'));
  set(record, 'runtimeHandler', id('runtimeHandler'));
  if (request && method.known) Object.assign(record, details(method.name, request, response, redactor));
  set(record, 'backend', input.backend);
  record.outcome = {
    code: input.outcome.code,
    status: grpcCodeName(input.outcome.code),
    ...(input.outcome.message && input.outcome.code !== GrpcStatus.OK ? { message: clip(input.outcome.message) } : {}),
    ...(input.outcome.fromProxy ? { fromProxy: true } : {}),
  };
  record.durationMs = Math.round(input.durationMs * 1000) / 1000;
  const policy = policyOf(input.decision);
  if (policy) record.policy = policy;
  set(record, 'requestError', input.requestError);
  return record;
}

type Details = (request: DecodedMessage, redactor: Redactor, response: DecodedMessage | undefined) => Record<string, unknown>;

const restoredOf = (response: DecodedMessage | undefined): DecodedMessage[] => list(response?.restored_containers) ?? [];

// Per-method fields worth knowing; anything not listed here is deliberately left out of the log.
const detailsByMethod: Readonly<Record<string, Details>> = {
  RunPodSandbox: (r, red) => sandboxDetails(obj(r, 'config'), red),
  CreateContainer: (r, red) => containerDetails(obj(r, 'config'), red),
  PullImage: (r) => compact({ auth: authDetails(obj(r, 'auth')) }) ?? {},
  ExecSync: (r) => compact({ command: strings(r.cmd), timeout: num(r.timeout) }) ?? {},
  Exec: (r) => compact({ command: strings(r.cmd), tty: r.tty, stdin: r.stdin }) ?? {},
  Attach: (r) => compact({ tty: r.tty, stdin: r.stdin }) ?? {},
  PortForward: (r) => compact({ ports: Array.isArray(r.port) ? r.port.slice(0, MAX_LIST) : undefined }) ?? {},
  StopContainer: (r) => compact({ timeout: num(r.timeout) }) ?? {},
  UpdateContainerResources: (r) => compact({ resources: resources(obj(r, 'linux')) }) ?? {},
  UpdatePodSandboxResources: (r) => compact({ resources: resources(obj(r, 'resources')) }) ?? {},
  UpdateRuntimeConfig: (r) => compact({ podCidr: str(obj(obj(r, 'runtime_config'), 'network_config')?.pod_cidr) }) ?? {},
  // A checkpoint holds the container's memory and files: where it went is what a reviewer follows.
  CheckpointContainer: (r) => compact({ location: str(r.location), timeout: num(r.timeout) }) ?? {},
  CheckpointPod: (r) =>
    compact({ outputPath: str(r.output_path), containerIds: strings(r.container_ids), options: stringMap(obj(r, 'options')) }) ?? {},
  // A restore creates a pod and its containers without RunPodSandbox or CreateContainer: recorded like those.
  RestorePod: (r, red, response) =>
    compact({
      checkpointPath: str(r.checkpoint_path),
      options: stringMap(obj(r, 'options')),
      ...sandboxDetails(obj(r, 'config'), red),
      containers: list(r.container_configs)?.map((c) => restoredContainer(c, restoredOf(response), red)),
    }) ?? {},
};

function details(name: string, request: DecodedMessage, response: DecodedMessage | undefined, redactor: Redactor): Record<string, unknown> {
  const build = detailsByMethod[name];
  return build ? build(request, redactor, response) : {};
}

/** Which credentials were sent, never their values; the registry address is not a secret. */
function authDetails(auth: DecodedMessage | undefined): Record<string, unknown> | undefined {
  if (!auth) return undefined;
  const out: Record<string, unknown> = {};
  for (const key of ['username', 'password', 'auth', 'identity_token', 'registry_token']) {
    const value = auth[key];
    if (typeof value === 'string' && value !== '') out[key] = REDACTED;
  }
  set(out, 'server_address', str(auth.server_address));
  return Object.keys(out).length > 0 ? out : undefined;
}

function resources(linux: DecodedMessage | undefined): Record<string, unknown> | undefined {
  if (!linux) return undefined;
  return compact({
    cpuPeriod: num(linux.cpu_period),
    cpuQuota: num(linux.cpu_quota),
    cpuShares: num(linux.cpu_shares),
    memoryLimitBytes: num(linux.memory_limit_in_bytes),
    cpusetCpus: str(linux.cpuset_cpus),
    cpusetMems: str(linux.cpuset_mems),
  });
}

function policyOf(decision: unknown): Record<string, unknown> | undefined {
  if (typeof decision !== 'object' || decision === null) return undefined;
  const d = decision as Record<string, unknown>;
  return compact({
    action: str(d.action),
    rule: str(d.rule),
    reason: str(d.reason),
    mode: str(d.mode),
    verification: verificationOf(d.verification),
    // Each image of a call that names several (image volumes, a restore's containers).
    images: list(d.images)?.map((i) =>
      compact({
        image: str(i.image),
        at: str(i.at),
        action: str(i.action),
        rule: str(i.rule),
        reason: str(i.reason),
        verification: verificationOf(i.verification),
      }),
    ),
  });
}

/** The image's signature check: result, digest, signer (a key fingerprint or a certificate identity), failure. */
function verificationOf(value: unknown): Record<string, unknown> | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  const signer = obj(v, 'signer');
  return compact({
    result: str(v.result),
    digest: str(v.digest),
    signer: signer ? compact({ key: str(signer.key), subject: str(signer.subject), issuer: str(signer.issuer) }) : undefined,
    failure: str(v.failure),
    cached: flag(v.cached),
  });
}
