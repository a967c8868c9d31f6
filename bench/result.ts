/** The bench's result as written to disk: measured phases, their summaries by runtime and call, the target checks. */
import type { BurstSummary } from './burst-summary';
import type { RowKind } from './rows';
import type { CallSize } from './workloads';

export type Workload = 'throughput' | 'latency';

/** One measured phase: one runtime, call type, workload, row and round. */
export interface PhaseRecord {
  readonly runtime: string;
  readonly round: number;
  readonly call: string;
  readonly size: CallSize;
  readonly workload: Workload;
  readonly concurrency: number;
  readonly row: string;
  readonly kind: RowKind;
  readonly calls: number;
  readonly errors: number;
  readonly wallMs: number;
  readonly callsPerSec: number;
  readonly p50Us: number | undefined;
  readonly p99Us: number | undefined;
  /** The relay's CPU and read/write syscalls per call; undefined for direct. */
  readonly relayCpuUsPerCall: number | undefined;
  readonly relayReadsPerCall: number | undefined;
  readonly relayWritesPerCall: number | undefined;
  readonly runtimeCpuUsPerCall: number;
  readonly clientCpuUsPerCall: number;
  /** CPU of client, runtime and relay over wall time: 2.0 means both cores of this machine were busy. */
  readonly coresBusy: number;
}

export interface DirectSummary {
  readonly throughputConcurrency: number;
  readonly callsPerSec: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly runtimeCpuUsPerCall: number;
  readonly clientCpuUsPerCall: number;
  readonly coresBusy: number;
}

/** One relay row for one call type. `vsSplice` fields compare with the splice phase of the same round. */
export interface RowSummary {
  readonly kind: RowKind;
  readonly throughput: { readonly callsPerSec: number; readonly vsDirect: number; readonly vsSplice: number };
  readonly latency: {
    readonly p50Us: number;
    readonly addedP50Us: number;
    readonly addedP50VsSpliceUs: number;
    readonly p50VsDirect: number;
    readonly p99Us: number;
    readonly addedP99Us: number;
  };
  /** The relay's own CPU per call in each workload, and at throughput relative to the splice's. */
  readonly cpuUsPerCall: { readonly throughput: number; readonly latency: number; readonly vsSplice: number };
  /** Read and write syscalls per call: batching at high concurrency shows here. */
  readonly syscallsPerCall: { readonly throughput: number; readonly latency: number };
  /** At throughput, beside direct's: what the runtime and the client spent per call, and how busy the machine was. */
  readonly runtimeCpuUsPerCall: number;
  readonly clientCpuUsPerCall: number;
  readonly coresBusy: number;
}

export interface CallSummary {
  readonly size: CallSize;
  readonly direct: DirectSummary;
  readonly rows: Readonly<Record<string, RowSummary>>;
}

export interface MemorySummary {
  /** From start to its socket accepting a connection. */
  readonly listeningMs: number;
  /** Before any call, once RSS stopped moving (`idleSettled` false: it still moved when the bench gave up). */
  readonly idleRssMb: number;
  readonly idleSettled: boolean;
  /** At the end of the measured rounds. */
  readonly rssMb: number;
  readonly hwmMb: number;
}

export interface StartupCall {
  readonly firstUs: number;
  readonly laterMedianUs: number;
}

/** The first calls after a start against later ones (`later` of each), on a fresh connection. */
export interface StartupSummary {
  readonly calls: Readonly<Record<string, StartupCall>>;
  readonly later: number;
  readonly errors: number;
}

export interface SoakSample {
  readonly calls: number;
  readonly rssMb: number;
  readonly hwmMb: number;
  readonly callsPerSec: number;
  readonly errors: number;
}

export interface RuntimeFacts {
  readonly description: string;
  /** Unframed response message sizes by call type. */
  readonly responseBytes: Readonly<Record<string, number>>;
  readonly memory: Readonly<Record<string, MemorySummary>>;
  readonly startup?: Readonly<Record<string, StartupSummary>>;
  readonly soak?: Readonly<Record<string, readonly SoakSample[]>>;
  /** The pod-start burst by row (a real runtime only). */
  readonly bursts?: Readonly<Record<string, BurstSummary>>;
  readonly skipped: Readonly<Record<string, string>>;
}

export interface RuntimeResult extends RuntimeFacts {
  readonly calls: Readonly<Record<string, CallSummary>>;
}

export interface TargetCheck {
  readonly what: string;
  readonly value: number;
  readonly target: string;
  readonly met: boolean;
}

export interface BenchSettingsRecord {
  readonly phaseSeconds: number;
  readonly rounds: number;
  readonly concurrency: number;
  readonly largeConcurrency: number;
  readonly tracingExporter: string;
  readonly proxyNodeArgs: readonly string[];
  readonly profiling: boolean;
}

export interface BenchResult {
  readonly schema: 2;
  readonly at: string;
  readonly node: string;
  readonly cpus: number;
  readonly settings: BenchSettingsRecord;
  /** By runtime: `fake-runtime`, and `containerd` when it ran. */
  readonly runtimes: Readonly<Record<string, RuntimeResult>>;
  readonly checks: readonly TargetCheck[];
  readonly errors: number;
}
