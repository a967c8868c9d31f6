/** The soak's settings, all from SOAK_* environment variables (see bench/README.md). */
import type { TracingExporterMode } from './proxy-config';
import { flagFromEnv, numberFromEnv } from './settings';
import type { SoakLoadSettings } from './soak-load';

export interface SoakSettings {
  readonly seconds: number;
  readonly sampleMs: number;
  readonly containerd: boolean;
  readonly tracingExporter: TracingExporterMode;
  readonly load: SoakLoadSettings;
}

export function soakSettingsFromEnv(): SoakSettings {
  const exporter = process.env.SOAK_TRACING_EXPORTER ?? 'unreachable';
  if (exporter !== 'unreachable' && exporter !== 'none') throw new Error(`SOAK_TRACING_EXPORTER=${exporter}: expected unreachable or none`);
  const ms = (name: string, fallbackSeconds: number, minSeconds: number): number =>
    Math.round(numberFromEnv(name, fallbackSeconds, minSeconds) * 1000);
  return {
    seconds: numberFromEnv('SOAK_SECONDS', 60, 1),
    sampleMs: ms('SOAK_SAMPLE_SECONDS', 10, 1),
    containerd: flagFromEnv('SOAK_CONTAINERD'),
    tracingExporter: exporter,
    load: {
      pods: Math.round(numberFromEnv('SOAK_PODS', 100, 1)),
      relistMs: ms('SOAK_RELIST_SECONDS', 1, 0.1),
      statusMs: ms('SOAK_STATUS_SECONDS', 10, 1),
      statsMs: ms('SOAK_STATS_SECONDS', 10, 1),
      churnMs: ms('SOAK_CHURN_SECONDS', 5, 0.5),
      // kubelet's default --runtime-request-timeout.
      callTimeoutMs: ms('SOAK_CALL_TIMEOUT_SECONDS', 120, 1),
    },
  };
}
