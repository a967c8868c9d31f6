/**
 * The load generator: node:http2 with hand-framed gRPC bodies, one session per target, closed-loop workers.
 * Deliberately nothing per call beyond one stream and four listeners, so the client is not what is measured.
 */
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { CallType } from './workloads';

export interface PhaseResult {
  readonly calls: number;
  readonly errors: number;
  /** From the first call sent to the last one answered. */
  readonly wallMs: number;
  /** Per-call latency in µs, only when asked for (it costs an array push per call). */
  readonly latenciesUs: readonly number[] | undefined;
}

export interface PhaseSpec {
  readonly call: CallType;
  /** Framed response bytes (data frames' payload) a correct answer carries. */
  readonly expectedBytes: number;
  readonly concurrency: number;
  /** Infinity with `maxCalls`: as long as those take. */
  readonly durationMs: number;
  /** Stop once this many calls have been sent (the long memory run counts calls, not seconds). */
  readonly maxCalls?: number;
  readonly recordLatency: boolean;
}

/** One HTTP/2 connection to a unix socket, with windows big enough that flow control never waits. */
export function connect(socketPath: string): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect('http://localhost', {
      createConnection: () => net.connect(socketPath),
      settings: { initialWindowSize: 4 * 1024 * 1024 },
      peerMaxConcurrentStreams: 1000,
    });
    const onError = (err: Error): void => {
      session.destroy();
      reject(err);
    };
    session.once('error', onError);
    session.once('connect', () => {
      session.off('error', onError);
      // Errors after connect surface on the streams; an unhandled 'error' must not kill the bench.
      session.on('error', () => undefined);
      session.setLocalWindowSize(8 * 1024 * 1024);
      resolve(session);
    });
  });
}

function headersFor(call: Pick<CallType, 'path'>): http2.OutgoingHttpHeaders {
  return {
    ':method': 'POST',
    ':path': call.path,
    'content-type': 'application/grpc',
    te: 'trailers',
    'user-agent': 'cri-proxy-bench',
  };
}

/** Sends one call; `done` learns the response's DATA bytes and whether its status was 0. */
function callOnce(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body: Buffer,
  done: (statusOk: boolean, bytes: number) => void,
): void {
  // request() copies the headers, so one object serves every call.
  const stream = session.request(headers, { endStream: false });
  let bytes = 0;
  let status: unknown;
  stream.on('response', (h) => {
    if (h['grpc-status'] !== undefined) status = h['grpc-status'];
  });
  stream.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
  });
  stream.on('trailers', (t: http2.IncomingHttpHeaders) => {
    status = t['grpc-status'];
  });
  stream.on('error', () => undefined);
  stream.on('close', () => done(status === '0', bytes));
  stream.end(body);
}

/** One call on its own, timed: for the first calls after a start, where each one is a sample. */
export function timedCall(
  session: http2.ClientHttp2Session,
  call: CallType,
  expectedBytes: number,
): Promise<{ readonly ok: boolean; readonly us: number }> {
  return new Promise((resolve) => {
    const sentAt = performance.now();
    callOnce(session, headersFor(call), call.body, (statusOk, bytes) => {
      resolve({ ok: statusOk && bytes === expectedBytes, us: (performance.now() - sentAt) * 1000 });
    });
  });
}

/** The DATA bytes a successful `call` answers with (from a runtime whose answers the bench does not script). */
export function responseBytesOf(session: http2.ClientHttp2Session, call: CallType): Promise<number> {
  return new Promise((resolve, reject) => {
    callOnce(session, headersFor(call), call.body, (statusOk, bytes) => {
      if (statusOk) resolve(bytes);
      else reject(new Error(`${call.name} failed on the runtime itself`));
    });
  });
}

export interface UnaryAnswer {
  /** The gRPC status code; -1 when the call ended without one (a reset stream, a broken session). */
  readonly code: number;
  readonly message: string;
  /** The response message without its gRPC length prefix; empty unless the status is OK. */
  readonly body: Buffer;
}

/**
 * One unary call with `grpc-timeout` set, its answer collected: for loads that act on what the runtime says
 * (ids of what they created), not for throughput phases.
 */
export function unaryCall(
  session: http2.ClientHttp2Session,
  callPath: string,
  framedBody: Buffer,
  timeoutMs: number,
): Promise<UnaryAnswer> {
  return new Promise((resolve) => {
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.request({ ...headersFor({ path: callPath }), 'grpc-timeout': `${Math.ceil(timeoutMs)}m` }, { endStream: false });
    } catch (err) {
      resolve({ code: -1, message: err instanceof Error ? err.message : String(err), body: Buffer.alloc(0) });
      return;
    }
    const chunks: Buffer[] = [];
    let fields: http2.IncomingHttpHeaders = {};
    stream.on('response', (h) => (fields = h));
    stream.on('trailers', (t: http2.IncomingHttpHeaders) => (fields = t));
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('error', () => undefined);
    stream.on('close', () => {
      const status = fields['grpc-status'];
      const code = typeof status === 'string' ? Number(status) : -1;
      const message = fields['grpc-message'];
      const data = Buffer.concat(chunks);
      resolve({
        code,
        message: typeof message === 'string' ? decodeURIComponent(message) : code === -1 ? `stream closed (${stream.rstCode})` : '',
        body: code === 0 && data.length >= 5 ? data.subarray(5) : Buffer.alloc(0),
      });
    });
    stream.end(framedBody);
  });
}

/** Runs `concurrency` closed-loop workers for `durationMs`; rejects only if the session itself breaks. */
export function runPhase(session: http2.ClientHttp2Session, spec: PhaseSpec): Promise<PhaseResult> {
  const headers = headersFor(spec.call);
  const { body } = spec.call;
  return new Promise((resolve, reject) => {
    const latencies: number[] | undefined = spec.recordLatency ? [] : undefined;
    const start = performance.now();
    const end = start + spec.durationMs;
    const maxCalls = spec.maxCalls ?? Infinity;
    let sent = 0;
    let calls = 0;
    let errors = 0;
    const workers = Math.min(spec.concurrency, maxCalls);
    let active = workers;
    let failed = false;
    const issue = (): void => {
      const sentAt = performance.now();
      sent++;
      try {
        callOnce(session, headers, body, (statusOk, bytes) => {
          const now = performance.now();
          calls++;
          if (!statusOk || bytes !== spec.expectedBytes) errors++;
          latencies?.push((now - sentAt) * 1000);
          if (now < end && sent < maxCalls && !failed) issue();
          else if (--active === 0 && !failed) resolve({ calls, errors, wallMs: now - start, latenciesUs: latencies });
        });
      } catch (err) {
        failed = true;
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    };
    if (workers <= 0) resolve({ calls: 0, errors: 0, wallMs: 0, latenciesUs: latencies });
    for (let i = 0; i < workers; i++) issue();
  });
}

/** Polls until a call through `socketPath` succeeds, so the first phase never measures a start-up. */
export async function waitUntilServing(socketPath: string, call: CallType, expectedBytes: number, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  let lastError = 'no answer';
  while (Date.now() < until) {
    try {
      const session = await connect(socketPath);
      try {
        const result = await runPhase(session, { call, expectedBytes, concurrency: 1, durationMs: 0, recordLatency: false });
        if (result.errors === 0) return;
        lastError = 'the call failed';
      } finally {
        session.close();
      }
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${socketPath} did not answer ${call.name} within ${timeoutMs} ms: ${lastError}`);
}
