/** gRPC status codes the proxy produces itself (the runtime's own codes pass through untouched). */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;
export type GrpcStatusCode = (typeof GrpcStatus)[keyof typeof GrpcStatus];

/** Stable error codes of the proxy; each maps to exactly one gRPC status, here and nowhere else. */
const statusOfCode = {
  CONFIG_INVALID: GrpcStatus.INVALID_ARGUMENT,
  UPSTREAM_UNAVAILABLE: GrpcStatus.UNAVAILABLE,
  UPSTREAM_PROTOCOL: GrpcStatus.INTERNAL,
  MESSAGE_TOO_LARGE: GrpcStatus.RESOURCE_EXHAUSTED,
  LIMIT_EXCEEDED: GrpcStatus.RESOURCE_EXHAUSTED,
  MALFORMED_REQUEST: GrpcStatus.INVALID_ARGUMENT,
  INTERCEPTOR_FAILED: GrpcStatus.INTERNAL,
  CHAIN_MISUSE: GrpcStatus.INTERNAL,
  PROXY_INTERNAL: GrpcStatus.INTERNAL,
  AUDIT_WRITE_FAILED: GrpcStatus.UNAVAILABLE,
  AUDIT_TIMEOUT: GrpcStatus.UNAVAILABLE,
  POLICY_DENIED: GrpcStatus.PERMISSION_DENIED,
  POLICY_UNDECIDABLE: GrpcStatus.PERMISSION_DENIED,
  SIGNATURE_MISSING: GrpcStatus.PERMISSION_DENIED,
  SIGNATURE_UNTRUSTED: GrpcStatus.PERMISSION_DENIED,
  SIGNATURE_INVALID: GrpcStatus.PERMISSION_DENIED,
  SIGNER_IDENTITY_MISMATCH: GrpcStatus.PERMISSION_DENIED,
  SIGNED_DIGEST_MISMATCH: GrpcStatus.PERMISSION_DENIED,
  SIGNED_REFERENCE_MISMATCH: GrpcStatus.PERMISSION_DENIED,
  REGISTRY_UNAVAILABLE: GrpcStatus.UNAVAILABLE,
  IMAGE_CHANGED_DURING_PULL: GrpcStatus.PERMISSION_DENIED,
  NO_BACKEND: GrpcStatus.UNAVAILABLE,
  SHUTTING_DOWN: GrpcStatus.UNAVAILABLE,
  CANCELLED: GrpcStatus.CANCELLED,
  DEADLINE_EXCEEDED: GrpcStatus.DEADLINE_EXCEEDED,
} as const satisfies Record<string, GrpcStatusCode>;

export type ProxyErrorCode = keyof typeof statusOfCode;

/**
 * Every stable code, in table order (the README documents each; a test checks it does).
 * @internal read by that test only
 */
export const proxyErrorCodes = Object.keys(statusOfCode) as readonly ProxyErrorCode[];

/**
 * Codes that, thrown by an interceptor, mean the interceptor itself failed (its `onError` applies) rather than a
 * decision about the call (a denial, a deadline) that always stands.
 */
const interceptorFaultCodes: ReadonlySet<ProxyErrorCode> = new Set(['CHAIN_MISUSE', 'AUDIT_WRITE_FAILED', 'AUDIT_TIMEOUT']);

/** An error the proxy reports to the client as a gRPC status; `code` is stable and documented. */
export class ProxyError extends Error {
  override readonly name = 'ProxyError';
  constructor(
    readonly code: ProxyErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  get grpcStatus(): GrpcStatusCode {
    return statusOfCode[this.code];
  }

  get isInterceptorFault(): boolean {
    return interceptorFaultCodes.has(this.code);
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

const on = (path: string | undefined): string => (path === undefined ? '' : ` on ${path}`);
const listenProblems: Readonly<Record<string, (path: string | undefined) => string>> = {
  EADDRINUSE: () => 'is in use',
  EACCES: (path) => `cannot be opened: permission denied${on(path)}`,
  EPERM: (path) => `cannot be opened: not permitted${on(path)}`,
  EADDRNOTAVAIL: () => 'is not an address of this machine',
  ENOTFOUND: () => 'names a host that cannot be resolved',
  EAI_AGAIN: () => 'names a host that cannot be resolved',
  ENOTDIR: (path) => `cannot be created: ${path ?? 'a parent'} is not a directory`,
  // mkdir of a path a file already holds.
  EEXIST: (path) => `cannot be created: ${path ?? 'a parent'} exists and is not a directory`,
  EROFS: (path) => `cannot be created: read-only file system${on(path)}`,
  ENOSPC: () => 'cannot be created: no space left on the device',
};

/**
 * A listener that could not open, told in terms of the setting that names it: `http.listen: 127.0.0.1:9464 is in
 * use` rather than `listen EADDRINUSE: address already in use 127.0.0.1:9464`.
 */
export function listenError(setting: string, address: string, err: unknown): Error {
  const errno = err as NodeJS.ErrnoException | undefined;
  const describe = typeof errno?.code === 'string' ? listenProblems[errno.code] : undefined;
  const problem = describe === undefined ? `cannot be opened: ${errorMessage(err)}` : describe(errno?.path);
  return new Error(`${setting}: ${address} ${problem}`, { cause: err });
}
