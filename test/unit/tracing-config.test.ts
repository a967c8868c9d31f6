import { ConfigError, parseConfig } from '../../src/config/load';
import { builtinTypes } from '../../src/commands/builtin-types';
import { tracingConfigSchema } from '../../src/interceptors/tracing/config';

const BACKEND = 'backends: [{ name: containerd, endpoint: /run/containerd/containerd.sock }]\n';

function tracingEntry(config: string): string {
  return `${BACKEND}interceptors:\n  - name: trace\n    type: tracing\n    config: ${config}\n`;
}

function issuePaths(yaml: string): string[] {
  try {
    parseConfig(yaml, 'test.yaml', builtinTypes());
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => i.path).sort();
    throw err;
  }
  return [];
}

describe('tracing config', () => {
  test('an empty config gets every default', () => {
    expect(tracingConfigSchema.parse({})).toEqual({
      exporter: { type: 'none', timeoutMs: 10_000, shutdownTimeoutMs: 1000 },
      samplingRatio: 1,
      pollingSamplingRatio: 0,
      slowCallMs: 1000,
      serviceName: 'cri-proxy',
      podStart: { enabled: true },
    });
  });

  test('a full config is taken as written', () => {
    const yaml = tracingEntry(
      '{ exporter: { type: otlp-grpc, endpoint: "http://collector:4317", headers: { x-api-key: k }, timeoutMs: 2000, shutdownTimeoutMs: 300 }, ' +
        'samplingRatio: 0.25, pollingSamplingRatio: 0.5, slowCallMs: 200, serviceName: node-a, podStart: { enabled: false } }',
    );
    const config = parseConfig(yaml, 'test.yaml', builtinTypes());
    expect(config.interceptors[0]?.config).toEqual({
      exporter: {
        type: 'otlp-grpc',
        endpoint: 'http://collector:4317',
        headers: { 'x-api-key': 'k' },
        timeoutMs: 2000,
        shutdownTimeoutMs: 300,
      },
      samplingRatio: 0.25,
      pollingSamplingRatio: 0.5,
      slowCallMs: 200,
      serviceName: 'node-a',
      podStart: { enabled: false },
    });
  });

  test.each([
    ['ratio above 1', '{ samplingRatio: 1.5 }', ['interceptors[0].config.samplingRatio']],
    ['negative ratio', '{ samplingRatio: -0.1 }', ['interceptors[0].config.samplingRatio']],
    ['polling ratio above 1', '{ pollingSamplingRatio: 2 }', ['interceptors[0].config.pollingSamplingRatio']],
    ['negative slowCallMs', '{ slowCallMs: -1 }', ['interceptors[0].config.slowCallMs']],
    ['unknown exporter', '{ exporter: { type: jaeger } }', ['interceptors[0].config.exporter.type']],
    ['endpoint not http', '{ exporter: { type: otlp-http, endpoint: "ftp://x/v1/traces" } }', ['interceptors[0].config.exporter.endpoint']],
    ['endpoint not a URL', '{ exporter: { type: otlp-http, endpoint: "collector:4318" } }', ['interceptors[0].config.exporter.endpoint']],
    ['zero timeout', '{ exporter: { timeoutMs: 0 } }', ['interceptors[0].config.exporter.timeoutMs']],
    ['unknown key', '{ exporter: { type: none, url: "http://x" } }', ['interceptors[0].config.exporter.url']],
    ['unknown top-level key', '{ sampler: always }', ['interceptors[0].config.sampler']],
    ['settleMs, now podStarts.settleMs', '{ podStart: { settleMs: 1000 } }', ['interceptors[0].config.podStart.settleMs']],
    ['maxPods, now podStarts.maxStarting', '{ podStart: { maxPods: 10 } }', ['interceptors[0].config.podStart.maxPods']],
    ['empty service name', '{ serviceName: "" }', ['interceptors[0].config.serviceName']],
  ])('%s is rejected at its path', (_name, config, paths) => {
    expect(issuePaths(tracingEntry(config))).toEqual(paths);
  });
});
