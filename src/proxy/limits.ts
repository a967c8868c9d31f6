import { MAX_INT32 } from '../values';

/** The range the config accepts for a limit, and its default. */
interface LimitSpec {
  readonly default: number;
  readonly min: number;
  readonly max: number;
}

/**
 * What a client connection may use: the `limits` settings group, defined once. The config schema accepts these
 * keys within these ranges and fills in these defaults; the data plane reads the result as it is. Every limit that
 * triggers is counted in `cri_proxy_limit_exceeded_total`. A new limit is one line here (and its use).
 */
export const LIMITS = {
  /** Client connections held at once; at the limit the longest-idle one is closed, or the new one refused. */
  maxConnections: { default: 128, min: 1, max: 100_000 },
  /** Time from accept to the client's preface and SETTINGS. */
  handshakeTimeoutMs: { default: 10_000, min: 1, max: MAX_INT32 },
  /** Bytes a client may send before its preface and SETTINGS are complete. */
  handshakeMaxBytes: { default: 4096, min: 64, max: MAX_INT32 },
  /** A connection without calls for this long is closed (GOAWAY, NO_ERROR); 0 never. */
  idleTimeoutMs: { default: 300_000, min: 0, max: MAX_INT32 },
  /** Calls in flight per connection (SETTINGS_MAX_CONCURRENT_STREAMS); more are refused (REFUSED_STREAM). */
  maxConcurrentStreams: { default: 256, min: 1, max: MAX_INT32 },
  /** Largest request header list (SETTINGS_MAX_HEADER_LIST_SIZE); a larger one gets RESOURCE_EXHAUSTED. */
  maxHeaderListBytes: { default: 64 * 1024, min: 1024, max: MAX_INT32 },
  /** Request bytes held per connection for interceptors that read requests; beyond, RESOURCE_EXHAUSTED. */
  maxHeldRequestBytes: { default: 64 * 1024 * 1024, min: 1, max: MAX_INT32 },
  /** Flow-control window given to each client per stream (SETTINGS_INITIAL_WINDOW_SIZE). */
  streamWindowBytes: { default: 1024 * 1024, min: 65_535, max: MAX_INT32 },
  /** Flow-control window given to each client per connection. */
  connectionWindowBytes: { default: 16 * 1024 * 1024, min: 65_535, max: MAX_INT32 },
  /** Response bytes waiting for one client (unread, or beyond its windows); beyond, its connection is closed. */
  maxHeldResponseBytes: { default: 16 * 1024 * 1024, min: 65_536, max: MAX_INT32 },
  /** Streams a client may reset before their call ends, or have refused as malformed, before it is disconnected. */
  maxResetStreams: { default: 500, min: 1, max: MAX_INT32 },
  /** CONTINUATION frames in one header block. */
  maxContinuationFrames: { default: 16, min: 1, max: MAX_INT32 },
  /** Entries in one SETTINGS frame. */
  maxSettingsEntries: { default: 32, min: 6, max: MAX_INT32 },
  /** DATA and HEADERS frames in a row that carry nothing and end nothing (CONTINUATION frames have maxContinuationFrames). */
  maxEmptyFrames: { default: 10, min: 1, max: MAX_INT32 },
} as const satisfies Record<string, LimitSpec>;

/** Every limit's value, as the config holds it once validated. */
export type Limits = { readonly [K in keyof typeof LIMITS]: number };
