import type { CriField } from '../../chain/types';
import type { PodStartPhaseName } from '../../observability/pod-start-tracker';

/**
 * Every span attribute name the proxy sets, in one place. RPC names follow the OpenTelemetry semantic
 * conventions for gRPC; `cri.*` names are the proxy's own.
 */

// RPC semantic conventions.
export const ATTR_RPC_SYSTEM = 'rpc.system';
export const RPC_SYSTEM_GRPC = 'grpc';
export const ATTR_RPC_SERVICE = 'rpc.service';
export const ATTR_RPC_METHOD = 'rpc.method';
export const ATTR_RPC_GRPC_STATUS_CODE = 'rpc.grpc.status_code';

// Resource.
export const ATTR_SERVICE_NAME = 'service.name';

// CRI identity.
export const ATTR_CRI_POD_NAME = 'cri.pod.name';
export const ATTR_CRI_POD_NAMESPACE = 'cri.pod.namespace';
export const ATTR_CRI_POD_UID = 'cri.pod.uid';
export const ATTR_CRI_CONTAINER_NAME = 'cri.container.name';
export const ATTR_CRI_CONTAINER_ID = 'cri.container.id';
export const ATTR_CRI_SANDBOX_ID = 'cri.sandbox.id';
export const ATTR_CRI_IMAGE = 'cri.image';
export const ATTR_CRI_RUNTIME_HANDLER = 'cri.runtime_handler';
export const ATTR_CRI_BACKEND = 'cri.backend';
/** True when the proxy produced the call's status itself (e.g. runtime unreachable) rather than the runtime. */
export const ATTR_CRI_FROM_PROXY = 'cri.from_proxy';

/** The span attribute of each identity field the method table can locate. */
export const criFieldAttributes: Readonly<Record<CriField, string>> = {
  sandboxId: ATTR_CRI_SANDBOX_ID,
  podName: ATTR_CRI_POD_NAME,
  podNamespace: ATTR_CRI_POD_NAMESPACE,
  podUid: ATTR_CRI_POD_UID,
  containerId: ATTR_CRI_CONTAINER_ID,
  containerName: ATTR_CRI_CONTAINER_NAME,
  image: ATTR_CRI_IMAGE,
  runtimeHandler: ATTR_CRI_RUNTIME_HANDLER,
};

// Image verification (a child span of the call's, one per verification).
export const SPAN_IMAGE_VERIFICATION = 'image verification';
/** The image policy rule whose `verify` was checked. */
export const ATTR_IMAGE_POLICY_RULE = 'cri.image_policy.rule';
/** The manifest (or index) digest verified. */
export const ATTR_IMAGE_DIGEST = 'cri.image.digest';
/** `verified`, or why not (`no-signature`, `untrusted-signer`, …). */
export const ATTR_VERIFICATION_RESULT = 'cri.image_verification.result';
/** True when the cache of verified digests answered, without the registry. */
export const ATTR_VERIFICATION_CACHED = 'cri.image_verification.cached';
/** The signer: `key sha256:…` or a certificate identity. */
export const ATTR_VERIFICATION_SIGNER = 'cri.image_verification.signer';

// Pod start.
export const ATTR_POD_START_TOTAL_MS = 'cri.pod_start.total_ms';
/** 'ok' or 'failed'. */
export const ATTR_POD_START_STATUS = 'cri.pod_start.status';
export const ATTR_POD_START_CONTAINERS = 'cri.pod_start.containers';
/** Phases left out of the trace because the pod had more than the tracker keeps. */
export const ATTR_POD_START_PHASES_DROPPED = 'cri.pod_start.phases_dropped';
/** On a phase span: which phase it is. */
export const ATTR_POD_START_PHASE = 'cri.pod_start.phase';
/** On a phase span: its duration. */
export const ATTR_POD_START_PHASE_MS = 'cri.pod_start.phase_ms';

/** `cri.pod_start.<phase>_ms`: on the pod span, the sum of that phase's durations. */
export const podStartPhaseTotalAttribute: Readonly<Record<PodStartPhaseName, string>> = {
  sandbox: 'cri.pod_start.sandbox_ms',
  pull: 'cri.pod_start.pull_ms',
  create: 'cri.pod_start.create_ms',
  start: 'cri.pod_start.start_ms',
};
