/** Span plans by method: built once from the method table, looked up on every call. */
import type { Attributes } from '@opentelemetry/api';
import type { CriField, MethodInfo } from '../../chain/types';
import { PodStartTracker } from '../../observability/pod-start-tracker';
import { ATTR_RPC_METHOD, ATTR_RPC_SERVICE, ATTR_RPC_SYSTEM, RPC_SYSTEM_GRPC, criFieldAttributes } from './attributes';

/** What a method's span needs, worked out once per method rather than on every call. */
export interface MethodPlan {
  readonly spanName: string;
  readonly attributes: Attributes;
  /** Request fields to record; empty for polling methods, whose requests are never decoded for tracing. */
  readonly requestFields: readonly (readonly [attribute: string, path: string])[];
  /** Response fields not already given by the request. */
  readonly responseFields: readonly (readonly [attribute: string, path: string])[];
  readonly podStart: boolean;
  /** Called by kubelet in a loop: sampled on its own (see polling.ts). */
  readonly polling: boolean;
}

export function planFor(method: MethodInfo): MethodPlan {
  const attributes: Attributes = { [ATTR_RPC_SYSTEM]: RPC_SYSTEM_GRPC, [ATTR_RPC_SERVICE]: method.service, [ATTR_RPC_METHOD]: method.name };
  const decoded = method.known && !method.polling;
  const fields = (paths: MethodInfo['requestFields'], skip: MethodInfo['requestFields']): [string, string][] =>
    decoded
      ? Object.entries(paths).flatMap(([field, path]) =>
          path === undefined || skip[field as CriField] !== undefined ? [] : [[criFieldAttributes[field as CriField], path]],
        )
      : [];
  return {
    spanName: `${method.service}/${method.name}`,
    attributes,
    requestFields: fields(method.requestFields, {}),
    responseFields: method.kind === 'unary' ? fields(method.responseFields, method.requestFields) : [],
    podStart: PodStartTracker.tracks(method),
    polling: method.polling,
  };
}
