import * as http from 'node:http';
import * as https from 'node:https';
import type { LookupFunction } from 'node:net';
import { gzipSync } from 'node:zlib';
import { failure, type ExportTransport, type SendResult } from './otlp-exporter';
import type { OtlpSettings } from './otlp-settings';
import { lookupHost } from './name-lookup';

/** Statuses worth another attempt (OTLP/HTTP: 429, 502, 503, 504); others fail the export at once. */
const RETRYABLE_STATUS = new Set([429, 502, 503, 504]);
const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

/** OTLP/HTTP with JSON bodies: a POST per export; aborting its signal destroys the request and its connection. */
export class OtlpHttpTransport implements ExportTransport {
  private readonly agent: http.Agent;
  private readonly request: typeof http.request;

  constructor(private readonly settings: OtlpSettings) {
    const tls = settings.url.protocol === 'https:';
    this.agent = tls ? new https.Agent({ keepAlive: true, ...settings.tls }) : new http.Agent({ keepAlive: true });
    this.request = tls ? https.request : http.request;
  }

  send(body: Uint8Array, signal: AbortSignal): Promise<SendResult> {
    const headers: Record<string, string> = { ...this.settings.headers, 'Content-Type': 'application/json', 'User-Agent': 'cri-proxy' };
    let payload = Buffer.from(body);
    if (this.settings.gzip) {
      payload = gzipSync(payload);
      headers['Content-Encoding'] = 'gzip';
    }
    return new Promise((resolve) => {
      const options = { method: 'POST', headers, agent: this.agent, signal, lookup: abortableLookup(signal) };
      const req = this.request(this.settings.url, options, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size <= MAX_RESPONSE_BYTES) chunks.push(chunk);
        });
        res.on('error', (err) => resolve(failure(err, false)));
        res.on('end', () => resolve(answer(res, Buffer.concat(chunks))));
      });
      // Every network error (refused, reset, a name that did not resolve) may pass; an abort ends the export.
      req.on('error', (err) => resolve(failure(err, !signal.aborted)));
      req.end(payload);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

function answer(res: http.IncomingMessage, body: Buffer): SendResult {
  const status = res.statusCode ?? 0;
  if (status >= 200 && status < 300) return { ok: true };
  const error = new Error(
    `the collector answered ${status}${res.statusMessage ? ` ${res.statusMessage}` : ''}: ${body.toString('utf8', 0, 200)}`,
  );
  return failure(error, RETRYABLE_STATUS.has(status), retryAfterMs(res.headers['retry-after']));
}

/** Retry-After: seconds, or an HTTP date. */
function retryAfterMs(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/** net's `lookup` option on lookupHost: hosts file, then DNS, given up when the export is. */
function abortableLookup(signal: AbortSignal): LookupFunction {
  return (hostname, options, callback) => {
    lookupHost(hostname, signal).then(
      (found) => {
        const wanted = options.family === 4 || options.family === 6 ? found.filter((a) => a.family === options.family) : found;
        const [first] = wanted;
        if (options.all === true) (callback as (err: null, addresses: typeof wanted) => void)(null, wanted);
        else if (first === undefined)
          callback(Object.assign(new Error(`${hostname} has no IPv${String(options.family)} address`), { code: 'ENOTFOUND' }), '', 0);
        else callback(null, first.address, first.family);
      },
      (err: unknown) => callback(err as NodeJS.ErrnoException, '', 0),
    );
  };
}
