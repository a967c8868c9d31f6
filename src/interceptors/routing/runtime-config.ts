/**
 * `RuntimeConfig` asked of every backend: kubelet takes its cgroup driver from the answer, and one driver must
 * hold for every pod on the node, whatever runtime runs it. Backends that disagree are never papered over by
 * answering one of them: the call fails naming each, and `Status` carries a condition saying so.
 */
import { GrpcStatus, ProxyError, errorMessage } from '../../errors';
import type { Logger } from '../../log';
import { decodeMessage } from '../../messages/codec';
import type { NamedReply } from './backend-call';
import { callEvery, failuresOf, fanOutFailure, type FanOutCall, type RoutedAnswer } from './fan-out';
import type { RoutingMetrics } from './metrics';

const PATH = '/runtime.v1.RuntimeService/RuntimeConfig';
const RESPONSE = 'runtime.v1.RuntimeConfigResponse';

/** The condition `Status` carries while the backends disagree (and only then). */
export const RUNTIME_CONFIG_CONDITION = 'RuntimeConfigConsistent';
export const RUNTIME_CONFIG_MISMATCH = 'RuntimeConfigMismatch';

/** What every backend said: the answers (backend order), and how they differ when they do. */
export interface RuntimeConfigs {
  readonly replies: readonly NamedReply[];
  /** `backend "a": cgroup driver systemd; backend "b": cgroup driver cgroupfs`; undefined when they agree. */
  readonly disagreement: string | undefined;
}

/** The settings of one answer this proxy knows, as `name value` phrases (proto3 defaults spelt out). */
function settingsOf(backend: string, body: Buffer | undefined): string {
  let decoded;
  try {
    decoded = decodeMessage(RESPONSE, body ?? Buffer.alloc(0));
  } catch (err) {
    throw new ProxyError('UPSTREAM_PROTOCOL', `backend "${backend}" sent a malformed ${RESPONSE}: ${errorMessage(err)}`, { cause: err });
  }
  const linux = decoded['linux'] as { cgroup_driver?: unknown } | undefined;
  const driver = typeof linux?.cgroup_driver === 'string' ? linux.cgroup_driver : 'SYSTEMD';
  return `cgroup driver ${driver.toLowerCase()}`;
}

/** Compares the answers of the backends that gave one (a backend without the method has nothing to disagree with). */
export function compareRuntimeConfigs(replies: readonly NamedReply[]): RuntimeConfigs {
  const answered = replies
    .filter((r) => r.reply.code === GrpcStatus.OK)
    .map((r) => ({ ...r, settings: settingsOf(r.backend, r.reply.body) }));
  const distinct = new Set(answered.map((a) => a.settings));
  const disagreement = distinct.size > 1 ? answered.map((a) => `backend "${a.backend}": ${a.settings}`).join('; ') : undefined;
  return { replies, disagreement };
}

export async function askRuntimeConfigs(c: FanOutCall): Promise<RuntimeConfigs> {
  return compareRuntimeConfigs(await callEvery(c, c.backends, PATH, Buffer.alloc(0)));
}

/**
 * The answer kubelet gets: the first answering backend's, as it sent it, when every backend that has the method
 * agrees; FAILED_PRECONDITION naming each when they disagree; UNIMPLEMENTED when none has it (kubelet then uses
 * its own setting); a failure naming the backends that could not answer otherwise.
 */
export function runtimeConfigAnswer({ replies, disagreement }: RuntimeConfigs): RoutedAnswer {
  if (disagreement !== undefined) {
    const message =
      `cri-proxy: the backends disagree on RuntimeConfig (${disagreement}); pods of one of them would run ` +
      'with the wrong settings, so none is answered: configure every runtime alike';
    return { from: 'proxy', answer: { code: GrpcStatus.FAILED_PRECONDITION, message, body: undefined } };
  }
  const failed = failuresOf(replies);
  const unreachable = failed.filter((f) => f.code !== GrpcStatus.UNIMPLEMENTED);
  const first = replies.find((r) => r.reply.code === GrpcStatus.OK);
  // A backend that could not answer might disagree: nothing can be answered for it.
  if (unreachable.length > 0 || first === undefined) return { from: 'proxy', answer: fanOutFailure('RuntimeConfig', failed) };
  return { from: 'backend', ...first };
}

/** The answers as last compared: consistent, or not, or not known yet (a backend could not answer). */
type ConfigState = 'unknown' | 'consistent' | 'inconsistent';

/** What the backends' RuntimeConfig answers last showed: in a gauge, and in the log when it changes. */
export class RuntimeConfigWatch {
  private state: ConfigState = 'unknown';

  constructor(
    private readonly metrics: RoutingMetrics,
    private readonly log: Logger,
  ) {}

  /** Asks every backend and notes what they say (a malformed answer counts as no answer). */
  async check(c: FanOutCall): Promise<RuntimeConfigs> {
    const configs = await askRuntimeConfigs(c);
    this.note(configs);
    return configs;
  }

  note({ replies, disagreement }: RuntimeConfigs): void {
    const unanswered = failuresOf(replies).filter((f) => f.code !== GrpcStatus.UNIMPLEMENTED);
    // Unknown while a backend could not answer, unless the others already disagree.
    const state: ConfigState = disagreement !== undefined ? 'inconsistent' : unanswered.length > 0 ? 'unknown' : 'consistent';
    if (state === 'unknown') return;
    this.metrics.runtimeConfigConsistent.set(state === 'consistent' ? 1 : 0);
    const was = this.state;
    this.state = state;
    if (state === was) return;
    if (state === 'inconsistent') {
      this.log.error("the backends' RuntimeConfig answers disagree: kubelet's RuntimeConfig calls fail and Status says so", {
        disagreement,
      });
    } else if (was === 'inconsistent') this.log.info("the backends' RuntimeConfig answers agree again");
  }
}
