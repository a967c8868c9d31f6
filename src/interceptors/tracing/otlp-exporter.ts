import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { delay } from '../../scheduler';

/** How one attempt to send an export went. */
export type SendResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly retryable: boolean; readonly error: Error; readonly retryAfterMs?: number | undefined };

/** Carries serialized exports to the collector; `signal` aborts an attempt (its deadline, or a shutdown). */
export interface ExportTransport {
  send(body: Uint8Array, signal: AbortSignal, deadline: number): Promise<SendResult>;
  /** Releases the connections: nothing of the transport is left running afterwards. */
  close(): void;
}

const MAX_RETRIES = 5;
const FIRST_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 5000;
const BACKOFF_FACTOR = 1.5;
const JITTER = 0.2;

/**
 * An OTLP span exporter whose every export can be abandoned: one export at a time (a batch due meanwhile fails at
 * once), retried with backoff within `timeoutMs` as the OTLP specification asks, and on shutdown everything still
 * going is aborted at once: the sockets, the name lookups and the retry timers. Whatever a collector does, nothing of
 * the exporter outlives shutdown(), so a stopping proxy waits for no export it does not choose to wait for.
 */
export class OtlpExporter implements SpanExporter {
  private readonly inFlight = new Map<AbortController, Promise<void>>();
  private closed = false;

  constructor(
    private readonly transport: ExportTransport,
    private readonly serialize: (spans: ReadableSpan[]) => Uint8Array | undefined,
    private readonly timeoutMs: number,
  ) {}

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    const refused = (error: unknown): void =>
      done({ code: ExportResultCode.FAILED, error: error instanceof Error ? error : new Error(String(error)) });
    if (this.closed) {
      refused('the exporter is shut down');
      return;
    }
    if (this.inFlight.size > 0) {
      refused('the previous export is still in flight');
      return;
    }
    let body: Uint8Array | undefined;
    try {
      body = this.serialize(spans);
    } catch (err) {
      refused(err);
      return;
    }
    if (body === undefined) {
      refused('the spans could not be serialized');
      return;
    }
    // Aborted by its deadline or by a shutdown, whichever comes first.
    const controller = new AbortController();
    const expiry = setTimeout(() => controller.abort(new Error(`export timed out after ${this.timeoutMs} ms`)), this.timeoutMs);
    const sending = this.sendWithRetries(body, controller.signal, Date.now() + this.timeoutMs).then((result) => {
      clearTimeout(expiry);
      this.inFlight.delete(controller);
      done(result.ok ? { code: ExportResultCode.SUCCESS } : { code: ExportResultCode.FAILED, error: result.error });
    });
    this.inFlight.set(controller, sending);
  }

  /** Aborts what is still going and closes the connections; resolves at once. */
  shutdown(): Promise<void> {
    this.closed = true;
    for (const controller of this.inFlight.keys()) controller.abort(new Error('the exporter was shut down'));
    this.transport.close();
    return Promise.resolve();
  }

  /** Resolves once the exports in flight have ended. */
  async forceFlush(): Promise<void> {
    await Promise.all(this.inFlight.values());
  }

  private async sendWithRetries(body: Uint8Array, signal: AbortSignal, deadline: number): Promise<SendResult> {
    let backoff = FIRST_BACKOFF_MS;
    for (let retries = 0; ; retries++) {
      const result = await this.transport.send(body, signal, deadline).catch((err: unknown) => failure(err, !signal.aborted));
      if (signal.aborted) return failure(signal.reason, false);
      if (result.ok || !result.retryable || retries === MAX_RETRIES) return result;
      const wait = result.retryAfterMs ?? Math.min(backoff * (1 + (Math.random() * 2 - 1) * JITTER), MAX_BACKOFF_MS);
      backoff *= BACKOFF_FACTOR;
      if (Date.now() + wait >= deadline) return result;
      await delay(wait, signal);
      if (signal.aborted) return failure(signal.reason, false);
    }
  }
}

export function failure(err: unknown, retryable: boolean, retryAfterMs?: number): SendResult {
  return { ok: false, retryable, error: err instanceof Error ? err : new Error(String(err)), retryAfterMs };
}
