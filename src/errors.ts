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
  MALFORMED_REQUEST: GrpcStatus.INVALID_ARGUMENT,
  INTERCEPTOR_FAILED: GrpcStatus.INTERNAL,
  CHAIN_MISUSE: GrpcStatus.INTERNAL,
  POLICY_DENIED: GrpcStatus.PERMISSION_DENIED,
  POLICY_UNDECIDABLE: GrpcStatus.PERMISSION_DENIED,
  NO_BACKEND: GrpcStatus.UNAVAILABLE,
  SHUTTING_DOWN: GrpcStatus.UNAVAILABLE,
  CANCELLED: GrpcStatus.CANCELLED,
  DEADLINE_EXCEEDED: GrpcStatus.DEADLINE_EXCEEDED,
} as const satisfies Record<string, GrpcStatusCode>;

export type ProxyErrorCode = keyof typeof statusOfCode;

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
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
