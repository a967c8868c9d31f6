import { GrpcStatus } from '../errors';
import { globMatcher } from '../policies/glob';
import type { CallOutcome, CriField, MethodInfo } from '../chain/types';
import { REDACTED } from '../values';
import type { DecodedMessage } from '../messages/codec';
import { fieldAt } from '../messages/field-at';

/** Decides which label and annotation values are replaced by the redaction marker. */
export interface Redactor {
  readonly annotation: (key: string) => boolean;
  readonly label: (key: string) => boolean;
}

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
  readonly time: Date;
}

// Bounds on what one record may carry, so a huge exec script cannot make a huge line.
const MAX_STRING = 4096;
const MAX_LIST = 256;

const statusNames = new Map<number, string>(Object.entries(GrpcStatus).map(([name, code]) => [code, name]));

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
  const pod = compact({ namespace: id('podNamespace'), name: id('podName'), uid: id('podUid') });
  if (pod) record.pod = pod;
  const container = compact({ name: id('containerName'), id: id('containerId') });
  if (container) record.container = container;
  set(record, 'sandboxId', id('sandboxId'));
  set(record, 'image', id('image'));
  if (method.name === 'PullImage') set(record, 'imageRef', fieldAt(response, 'image_ref'));
  set(record, 'runtimeHandler', id('runtimeHandler'));
  if (request && method.known) Object.assign(record, details(method.name, request, redactor));
  set(record, 'backend', input.backend);
  record.outcome = {
    code: input.outcome.code,
    status: statusNames.get(input.outcome.code) ?? 'UNKNOWN',
    ...(input.outcome.message && input.outcome.code !== GrpcStatus.OK ? { message: clip(input.outcome.message) } : {}),
    ...(input.outcome.fromProxy ? { fromProxy: true } : {}),
  };
  record.durationMs = Math.round(input.durationMs * 1000) / 1000;
  const policy = policyOf(input.decision);
  if (policy) record.policy = policy;
  set(record, 'requestError', input.requestError);
  return record;
}

type Details = (request: DecodedMessage, redactor: Redactor) => Record<string, unknown>;

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
  CheckpointContainer: (r) => compact({ location: str(r.location) }) ?? {},
  CheckpointPod: (r) => compact({ outputPath: str(r.output_path), containerIds: strings(r.container_ids) }) ?? {},
  RestorePod: (r) =>
    compact({
      checkpointPath: str(r.checkpoint_path),
      containers: list(r.container_configs)
        ?.slice(0, MAX_LIST)
        .map((c) => str(obj(c, 'metadata')?.name) ?? ''),
    }) ?? {},
};

function details(name: string, request: DecodedMessage, redactor: Redactor): Record<string, unknown> {
  const build = detailsByMethod[name];
  return build ? build(request, redactor) : {};
}

function sandboxDetails(config: DecodedMessage | undefined, redactor: Redactor): Record<string, unknown> {
  const security = obj(obj(config, 'linux'), 'security_context');
  return (
    compact({
      labels: redactMap(obj(config, 'labels'), redactor.label),
      annotations: redactMap(obj(config, 'annotations'), redactor.annotation),
      privileged: security?.privileged === true ? true : undefined,
      hostNamespaces: hostNamespaces(obj(security, 'namespace_options')),
    }) ?? {}
  );
}

function containerDetails(config: DecodedMessage | undefined, redactor: Redactor): Record<string, unknown> {
  const security = obj(obj(config, 'linux'), 'security_context');
  const envs = list(config?.envs)?.slice(0, MAX_LIST);
  return (
    compact({
      labels: redactMap(obj(config, 'labels'), redactor.label),
      annotations: redactMap(obj(config, 'annotations'), redactor.annotation),
      // Names tell what was configured; values are where the secrets are.
      env: envs?.map((e) => ({ name: clip(str(e.key) ?? ''), value: REDACTED })),
      mounts: list(config?.mounts)
        ?.slice(0, MAX_LIST)
        .map((m) =>
          compact({ hostPath: str(m.host_path), containerPath: str(m.container_path), readonly: m.readonly === true ? true : undefined }),
        ),
      devices: list(config?.devices)
        ?.slice(0, MAX_LIST)
        .map((d) => str(d.host_path)),
      privileged: security?.privileged === true ? true : undefined,
      hostNamespaces: hostNamespaces(obj(security, 'namespace_options')),
    }) ?? {}
  );
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

function hostNamespaces(options: DecodedMessage | undefined): string[] | undefined {
  if (!options) return undefined;
  const shared = ['network', 'pid', 'ipc'].filter((ns) => options[ns] === 'NODE');
  return shared.length > 0 ? shared : undefined;
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

function redactMap(map: DecodedMessage | undefined, redacted: (key: string) => boolean): Record<string, string> | undefined {
  if (!map) return undefined;
  const out: Record<string, string> = {};
  let count = 0;
  for (const [key, value] of Object.entries(map)) {
    if (count++ >= MAX_LIST) break;
    out[clip(key)] = redacted(key) ? REDACTED : clip(typeof value === 'string' ? value : '');
  }
  return count > 0 ? out : undefined;
}

function policyOf(decision: unknown): Record<string, unknown> | undefined {
  if (typeof decision !== 'object' || decision === null) return undefined;
  const d = decision as Record<string, unknown>;
  return compact({ action: str(d.action), rule: str(d.rule), reason: str(d.reason), mode: str(d.mode) });
}

function obj(value: unknown, key: string): DecodedMessage | undefined {
  if (typeof value !== 'object' || value === null || !Object.hasOwn(value, key)) return undefined;
  const inner = (value as Record<string, unknown>)[key];
  return typeof inner === 'object' && inner !== null && !Array.isArray(inner) ? (inner as DecodedMessage) : undefined;
}

function list(value: unknown): DecodedMessage[] | undefined {
  return Array.isArray(value) ? value.filter((v): v is DecodedMessage => typeof v === 'object' && v !== null) : undefined;
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? clip(value) : undefined;
}

function strings(value: unknown): string[] | undefined {
  if (!Array.isArray(value)) return undefined;
  return value.slice(0, MAX_LIST).map((v) => clip(typeof v === 'string' ? v : ''));
}

/** int64 fields decode as strings; small ones read better as numbers. */
function num(value: unknown): number | string | undefined {
  if (typeof value === 'number') return value === 0 ? undefined : value;
  if (typeof value !== 'string' || value === '' || value === '0') return undefined;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : clip(value);
}

function clip(s: string): string {
  return s.length <= MAX_STRING ? s : `${s.slice(0, MAX_STRING)}…[${s.length - MAX_STRING} more chars]`;
}

function set(target: Record<string, unknown>, key: string, value: unknown): void {
  if (value !== undefined && value !== '') target[key] = value;
}

/** The object without its undefined members, or undefined if nothing is left. */
function compact(fields: Record<string, unknown>): Record<string, unknown> | undefined {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) if (value !== undefined) out[key] = value;
  return Object.keys(out).length > 0 ? out : undefined;
}
