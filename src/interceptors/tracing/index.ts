import { defineInterceptorType, type InterceptorDeps } from '../../chain/interceptor-types';
import { errorMessage } from '../../errors';
import type { CallTracer } from './call-tracer';
import type { CallContext, Interceptor, Next } from '../../chain/types';
import { tracingConfigSchema, type TracingConfig } from './config';

export type { TracingConfig } from './config';

/**
 * A SERVER span per CRI call (continuing kubelet's trace context and passing ours on to the runtime), and a
 * `pod start` trace per pod. The OpenTelemetry SDK and exporters are large (tens of MB, a fifth of a second to
 * load), so they are loaded only when a tracing entry is configured: right away, in the background. Calls that
 * arrive before that wait for it; if it fails, calls go on untraced.
 */
export function createTracingInterceptor(config: TracingConfig, deps: InterceptorDeps): Interceptor {
  let tracer: CallTracer | undefined;
  const ready: Promise<CallTracer | undefined> = import('./call-tracer')
    .then((m) => m.CallTracer.create(config, deps))
    .then(
      (t) => (tracer = t),
      (err: unknown) => {
        deps.log.error('tracing is disabled: the tracer could not be set up', { error: errorMessage(err) });
        return undefined;
      },
    );
  return {
    name: deps.name,
    intercept(ctx: CallContext, next: Next): Promise<void> {
      if (tracer) return tracer.intercept(ctx, next);
      return ready.then((active) => (active ? active.intercept(ctx, next) : next()));
    },
    async warmUp(): Promise<void> {
      await ready;
    },
    async close(): Promise<void> {
      await (await ready)?.close();
    },
  };
}

export const tracingInterceptorType = defineInterceptorType({
  name: 'tracing',
  schema: tracingConfigSchema,
  // Exporter headers carry API keys and bearer tokens.
  secretKeys: ['exporter.headers.*'],
  observesEveryCall: 'the calls it ends would have no span',
  create: createTracingInterceptor,
});
