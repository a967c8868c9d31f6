import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { lookupHost } from '../../src/interceptors/tracing/name-lookup';
import { OtlpExporter } from '../../src/interceptors/tracing/otlp-exporter';
import { OtlpHttpTransport } from '../../src/interceptors/tracing/otlp-http';
import { otlpSettings } from '../../src/interceptors/tracing/otlp-settings';
import { makeTempDir } from '../support/proxy-harness';

describe('OTLP exporter settings', () => {
  const none = {};

  test('defaults: the collector on localhost, OTLP/HTTP with its path', () => {
    expect(otlpSettings('http', none, {}).url.href).toBe('http://localhost:4318/v1/traces');
    expect(otlpSettings('grpc', none, {}).url.href).toBe('http://localhost:4317/');
  });

  test('the configured endpoint wins over the environment; the traces variable over the general one', () => {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://general:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://traces:4318/custom' };
    expect(otlpSettings('http', { endpoint: 'https://configured/v1/traces' }, env).url.href).toBe('https://configured/v1/traces');
    expect(otlpSettings('http', none, env).url.href).toBe('http://traces:4318/custom');
  });

  test('the general endpoint gets /v1/traces for OTLP/HTTP and is taken as it is for OTLP/gRPC', () => {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' };
    expect(otlpSettings('http', none, env).url.href).toBe('http://collector:4318/v1/traces');
    expect(otlpSettings('grpc', none, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4317' }).url.host).toBe('collector:4317');
  });

  test('a gRPC endpoint without a scheme uses TLS unless OTEL_EXPORTER_OTLP_INSECURE is true', () => {
    expect(otlpSettings('grpc', none, { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4317' }).url.protocol).toBe('https:');
    const insecure = { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4317', OTEL_EXPORTER_OTLP_TRACES_INSECURE: 'true' };
    expect(otlpSettings('grpc', none, insecure).url.protocol).toBe('http:');
  });

  test('headers from the environment are merged under the configured ones; gzip and TLS files come from it', () => {
    const dir = makeTempDir();
    const ca = path.join(dir, 'ca.pem');
    fs.writeFileSync(ca, 'not really a certificate');
    const settings = otlpSettings(
      'http',
      { headers: { 'x-api-key': 'configured' } },
      {
        OTEL_EXPORTER_OTLP_HEADERS: 'x-api-key=env,x-tenant=a',
        OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'x-tenant=b',
        OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip',
        OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE: ca,
      },
    );
    expect(settings.headers).toEqual({ 'x-api-key': 'configured', 'x-tenant': 'b' });
    expect(settings.gzip).toBe(true);
    expect(settings.tls.ca?.toString()).toBe('not really a certificate');
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('looking a collector up', () => {
  test('an address is taken as it is, a name from the hosts file first', async () => {
    const dir = makeTempDir();
    const hostsFile = path.join(dir, 'hosts');
    fs.writeFileSync(hostsFile, '127.0.0.1 localhost\n10.1.2.3 Collector.Example collector # the node-local one\n::1 collector\n');
    const signal = new AbortController().signal;
    expect(await lookupHost('192.0.2.7', signal, { hostsFile })).toEqual([{ address: '192.0.2.7', family: 4 }]);
    expect(await lookupHost('[::1]', signal, { hostsFile })).toEqual([{ address: '::1', family: 6 }]);
    expect(await lookupHost('collector.example', signal, { hostsFile })).toEqual([{ address: '10.1.2.3', family: 4 }]);
    expect(await lookupHost('collector', signal, { hostsFile })).toEqual([
      { address: '10.1.2.3', family: 4 },
      { address: '::1', family: 6 },
    ]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('a DNS server that never answers holds nothing up: the lookup ends when its signal aborts', async () => {
    const dir = makeTempDir();
    const hostsFile = path.join(dir, 'hosts');
    fs.writeFileSync(hostsFile, '');
    const silent = dgram.createSocket('udp4');
    let queries = 0;
    silent.on('message', () => queries++);
    await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
    const server = `127.0.0.1:${silent.address().port}`;
    const controller = new AbortController();
    const lookup = lookupHost('collector.example', controller.signal, { hostsFile, dnsServers: [server] });
    // Once the question is out, the stop comes; the lookup ends with it, unanswered (c-ares, on the event loop:
    // getaddrinfo on the threadpool could be neither cancelled nor left behind by an exiting process).
    while (queries === 0) await new Promise((r) => setImmediate(r));
    controller.abort(new Error('stopping'));
    await expect(lookup).rejects.toThrow('stopping');
    silent.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('OTLP/HTTP exporter', () => {
  const body = (spans: ReadableSpan[]): Uint8Array => Buffer.from(JSON.stringify({ spans: spans.length }));
  const exportOnce = (exporter: OtlpExporter): Promise<ExportResult> => new Promise((resolve) => exporter.export([], resolve));

  async function collector(answers: number[]): Promise<{ url: string; requests: () => number; close: () => Promise<void> }> {
    let requests = 0;
    const server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const status = answers[requests++] ?? 200;
        res.writeHead(status, status === 503 ? { 'retry-after': '0' } : {}).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`;
    return { url, requests: () => requests, close: () => new Promise((resolve) => server.close(() => resolve())) };
  }

  test('a 503 is tried again (as Retry-After says); a 400 fails the export at once', async () => {
    const busy = await collector([503, 503, 200]);
    const exporter = new OtlpExporter(new OtlpHttpTransport(otlpSettings('http', { endpoint: busy.url }, {})), body, 60_000);
    expect((await exportOnce(exporter)).code).toBe(ExportResultCode.SUCCESS);
    expect(busy.requests()).toBe(3);
    await exporter.shutdown();
    await busy.close();

    const refusing = await collector([400]);
    const strict = new OtlpExporter(new OtlpHttpTransport(otlpSettings('http', { endpoint: refusing.url }, {})), body, 60_000);
    expect((await exportOnce(strict)).code).toBe(ExportResultCode.FAILED);
    expect(refusing.requests()).toBe(1);
    await strict.shutdown();
    await refusing.close();
  });

  test('one export at a time; after shutdown none', async () => {
    const held: http.ServerResponse[] = [];
    const server = http.createServer((req, res) => {
      req.resume();
      held.push(res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`;
    const exporter = new OtlpExporter(new OtlpHttpTransport(otlpSettings('http', { endpoint: url }, {})), body, 60_000);
    const first = exportOnce(exporter);
    expect((await exportOnce(exporter)).error?.message).toBe('the previous export is still in flight');
    while (held.length === 0) await new Promise((r) => setImmediate(r));
    await exporter.shutdown();
    // The export the collector held ends with the shutdown, not with its 60 s timeout.
    expect((await first).code).toBe(ExportResultCode.FAILED);
    expect((await exportOnce(exporter)).error?.message).toBe('the exporter is shut down');
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
});
