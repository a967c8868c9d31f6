import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { setTimeout } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { errorMessage } from '../../src/errors';
import { encodeMessage } from '../../src/messages/codec';
import { lookupMethod, methodTable } from '../../src/chain/method-table';
import type { MethodInfo } from '../../src/chain/types';

/** Metadata as received: text keys give a string (or several), `-bin` keys give Buffers. */
export type MetadataRecord = Record<string, string | string[] | Buffer[]>;
/** Metadata to send; `-bin` keys take Buffers. */
export type MetadataInit = Readonly<Record<string, string | Buffer | readonly (string | Buffer)[]>>;

export interface RecordedCall {
  readonly path: string;
  readonly name: string;
  readonly requestBytes: Buffer;
  readonly metadata: MetadataRecord;
  /** Absolute deadline in ms since the epoch, when the client sent one. */
  readonly deadline?: number;
  /** Set when the client (or a deadline) cancels the call while the fake still holds it. */
  cancelled: boolean;
}

export interface Failure {
  readonly code: grpc.status;
  readonly message?: string;
  readonly trailers?: MetadataInit;
  /** Sent as `grpc-status-details-bin` (a serialized google.rpc.Status, or any bytes the test wants). */
  readonly details?: Buffer;
}

export interface Behaviour {
  /** Unary reply, or the single message of a stream without `stream`; default: an empty message. */
  readonly respond?: Buffer | ((call: RecordedCall) => Buffer);
  /** Messages of a server stream, written with backpressure; stops early if the call is cancelled. */
  readonly stream?: (call: RecordedCall) => Iterable<Buffer> | AsyncIterable<Buffer>;
  /** Told each time the client side stops taking messages and the stream waits for it (flow control). */
  readonly onBackpressure?: () => void;
  /** End with this status instead of OK (after any streamed messages). */
  readonly fail?: Failure;
  /** Wait before answering; `Infinity` waits until the call is cancelled. */
  readonly delayMs?: number;
  readonly initialMetadata?: MetadataInit;
  /** Trailers sent with an OK status. */
  readonly trailers?: MetadataInit;
}

/** Thrown by a `respond` or `stream` function: the call ends with this status (a scripted runtime's own error). */
export class RuntimeFailure extends Error {
  constructor(readonly failure: Failure) {
    super(failure.message ?? `status ${failure.code}`);
  }
}

type UnaryCall = grpc.ServerUnaryCall<Buffer, Buffer>;
type StreamCall = grpc.ServerWritableStream<Buffer, Buffer>;

const identity = (b: Buffer): Buffer => b;

/**
 * A real gRPC server on a unix socket that answers every CRI method generically with raw bytes, records
 * each call, and can be scripted per method. Stop and start again to simulate a runtime restart.
 */
export class FakeRuntime {
  readonly calls: RecordedCall[] = [];
  private readonly behaviours = new Map<string, Behaviour>();
  private server: grpc.Server | undefined;

  /** `extraMethods`: paths outside CRI v1 (a future version, say) served as unary methods too. */
  constructor(
    readonly socketPath: string,
    private readonly extraMethods: readonly string[] = [],
  ) {}

  /** The gRPC target for clients, e.g. `unix:/tmp/x/fake.sock`. */
  get target(): string {
    return `unix:${this.socketPath}`;
  }

  /** Scripts a method by name (`RunPodSandbox`) or path; replaces any earlier behaviour for it. */
  on(method: string, behaviour: Behaviour): this {
    this.behaviours.set(nameOf(method), behaviour);
    return this;
  }

  lastCall(method: string): RecordedCall | undefined {
    const name = nameOf(method);
    for (let i = this.calls.length - 1; i >= 0; i--) {
      const call = this.calls[i];
      if (call?.name === name) return call;
    }
    return undefined;
  }

  /** Forgets recorded calls and scripted behaviours. */
  reset(): void {
    this.calls.length = 0;
    this.behaviours.clear();
  }

  async start(): Promise<void> {
    if (this.server) throw new Error('fake runtime already started');
    // A socket file left by a killed process would make the bind fail.
    rmSync(this.socketPath, { force: true });
    const server = new grpc.Server({ 'grpc.max_receive_message_length': -1, 'grpc.max_send_message_length': -1 });
    for (const method of methodTable) this.register(server, method);
    for (const path of this.extraMethods) this.register(server, lookupMethod(path));
    await new Promise<void>((resolve, reject) => {
      server.bindAsync(this.target, grpc.ServerCredentials.createInsecure(), (err) => {
        if (err) reject(err);
        else resolve();
      });
    });
    this.server = server;
  }

  /** Drops every connection and call at once, like a crashing runtime. */
  stop(): Promise<void> {
    this.server?.forceShutdown();
    this.server = undefined;
    return Promise.resolve();
  }

  private register(server: grpc.Server, method: MethodInfo): void {
    if (method.kind === 'server-stream') {
      const handler = (call: StreamCall): void => {
        this.serveStream(method, call).catch((err: unknown) => call.emit('error', failureOf(err)));
      };
      server.register(method.path, handler, identity, identity, 'serverStream');
    } else {
      const handler = (call: UnaryCall, callback: grpc.sendUnaryData<Buffer>): void => {
        this.serveUnary(method, call, callback).catch((err: unknown) => {
          callback(failureOf(err));
        });
      };
      server.register(method.path, handler, identity, identity, 'unary');
    }
  }

  private async prepare(method: MethodInfo, call: UnaryCall | StreamCall): Promise<[RecordedCall, Behaviour]> {
    const record = this.record(method, call);
    const behaviour = this.behaviours.get(keyOf(method)) ?? {};
    if (behaviour.initialMetadata) call.sendMetadata(toMetadata(behaviour.initialMetadata));
    if (behaviour.delayMs !== undefined) await delay(behaviour.delayMs, call);
    return [record, behaviour];
  }

  private async serveUnary(method: MethodInfo, call: UnaryCall, callback: grpc.sendUnaryData<Buffer>): Promise<void> {
    const [record, behaviour] = await this.prepare(method, call);
    if (record.cancelled) return;
    if (behaviour.fail) {
      callback(toError(behaviour.fail));
      return;
    }
    const trailers = behaviour.trailers ? toMetadata(behaviour.trailers) : undefined;
    callback(null, responseOf(method, behaviour, record), trailers);
  }

  private async serveStream(method: MethodInfo, call: StreamCall): Promise<void> {
    const [record, behaviour] = await this.prepare(method, call);
    if (record.cancelled) return;
    const messages = behaviour.stream ? behaviour.stream(record) : [responseOf(method, behaviour, record)];
    for await (const message of messages) {
      if (record.cancelled) return;
      if (!call.write(message)) {
        behaviour.onBackpressure?.();
        await untilCancelled(call, (signal) => once(call, 'drain', { signal }));
      }
    }
    if (record.cancelled) return;
    if (behaviour.fail) call.emit('error', toError(behaviour.fail));
    else call.end(behaviour.trailers ? toMetadata(behaviour.trailers) : undefined);
  }

  private record(method: MethodInfo, call: UnaryCall | StreamCall): RecordedCall {
    const deadline = deadlineMs(call.getDeadline());
    const record: RecordedCall = {
      path: method.path,
      name: keyOf(method),
      requestBytes: call.request,
      metadata: fromMetadata(call.metadata),
      ...(deadline === undefined ? {} : { deadline }),
      cancelled: call.cancelled,
    };
    call.once('cancelled', () => {
      record.cancelled = true;
    });
    this.calls.push(record);
    return record;
  }
}

const byName = new Map(methodTable.map((m) => [m.name, m]));
const byPath = new Map(methodTable.map((m) => [m.path, m]));

/** Calls and behaviours are keyed by method name, or by path for methods outside CRI v1. */
function keyOf(method: MethodInfo): string {
  return method.known ? method.name : method.path;
}

function nameOf(method: string): string {
  if (method.startsWith('/') && !lookupMethod(method).known) return method;
  const found = byPath.get(method) ?? byName.get(method);
  if (!found) throw new Error(`not a CRI method: ${method}`);
  return found.name;
}

let versionResponse: Buffer | undefined;

function responseOf(method: MethodInfo, behaviour: Behaviour, call: RecordedCall): Buffer {
  const { respond } = behaviour;
  if (respond) return typeof respond === 'function' ? respond(call) : respond;
  if (method.name !== 'Version') return Buffer.alloc(0);
  versionResponse ??= encodeMessage('runtime.v1.VersionResponse', {
    version: '0.1.0',
    runtime_name: 'fake-runtime',
    runtime_version: '1.0.0',
    runtime_api_version: 'v1',
  });
  return versionResponse;
}

/** Waits for `what`, or until the call is cancelled; listeners are removed either way. */
async function untilCancelled(call: UnaryCall | StreamCall, what: (signal: AbortSignal) => Promise<unknown>): Promise<void> {
  if (call.cancelled) return;
  const controller = new AbortController();
  const { signal } = controller;
  try {
    await Promise.race([once(call, 'cancelled', { signal }), what(signal)]);
  } catch (err) {
    if (!signal.aborted) throw err;
  } finally {
    controller.abort();
  }
}

/** Resolves after `ms` (never, for Infinity), or as soon as the call is cancelled. */
function delay(ms: number, call: UnaryCall | StreamCall): Promise<void> {
  return untilCancelled(call, (signal) => (Number.isFinite(ms) ? setTimeout(ms, undefined, { signal }) : once(signal, 'abort')));
}

function deadlineMs(deadline: grpc.Deadline): number | undefined {
  const ms = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(ms) ? ms : undefined;
}

function toMetadata(init: MetadataInit): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const [key, value] of Object.entries(init)) {
    const list: readonly (string | Buffer)[] = typeof value === 'string' || Buffer.isBuffer(value) ? [value] : value;
    for (const v of list) md.add(key, v);
  }
  return md;
}

function fromMetadata(md: grpc.Metadata): MetadataRecord {
  const out: MetadataRecord = {};
  for (const [key, values] of Object.entries(md.toJSON())) {
    if (key.endsWith('-bin')) out[key] = values.map((v) => (Buffer.isBuffer(v) ? v : Buffer.from(v)));
    else {
      const strings = values.map(String);
      out[key] = strings.length === 1 && strings[0] !== undefined ? strings[0] : strings;
    }
  }
  return out;
}

function toError(fail: Failure): grpc.ServerErrorResponse {
  const metadata = toMetadata(fail.trailers ?? {});
  if (fail.details) metadata.set('grpc-status-details-bin', fail.details);
  const message = fail.message ?? '';
  return Object.assign(new Error(message), { code: fail.code, details: message, metadata });
}

function failureOf(err: unknown): grpc.ServerErrorResponse {
  return err instanceof RuntimeFailure ? toError(err.failure) : internal(err);
}

function internal(err: unknown): grpc.ServerErrorResponse {
  const message = `fake runtime: ${errorMessage(err)}`;
  return Object.assign(new Error(message), { code: grpc.status.INTERNAL, details: message });
}
