/**
 * A small CRI client for the e2e suite, built on grpc-js and the project's own CRI proto. Methods are called by
 * name (`RunPodSandbox`, `PullImage`, ...); the service is found from the proto, so the same client talks to
 * containerd directly or to cri-proxy's socket. Messages are plain objects with snake_case keys; int64 fields
 * come back as strings and enums as their names.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export type CriMessage = Readonly<Record<string, unknown>>;

export interface CriCallOptions {
  /** Per-call deadline; 30 s unless given. */
  readonly timeoutMs?: number;
  /** Extra request metadata (gRPC headers). */
  readonly metadata?: Readonly<Record<string, string>>;
}

export interface CriStreamOptions extends CriCallOptions {
  /** Cancels the call when aborted. */
  readonly signal?: AbortSignal;
}

export interface CriClient {
  readonly socketPath: string;
  /** A unary call; rejects with the grpc-js ServiceError (`code`, `details`) on a non-OK status. */
  call(method: string, request?: object, options?: CriCallOptions): Promise<CriMessage>;
  /** A server-streaming call; ending the iteration early cancels the call. */
  stream(method: string, request?: object, options?: CriStreamOptions): AsyncGenerator<CriMessage, void, undefined>;
  close(): void;
}

const SERVICES = ['runtime.v1.RuntimeService', 'runtime.v1.ImageService'] as const;
const PROTO_RELATIVE = join('proto', 'runtime', 'v1', 'cri.proto');
type Method = protoLoader.MethodDefinition<object, object>;

let cachedMethods: Map<string, Method> | undefined;

/** Finds `proto/runtime/v1/cri.proto` above this file (works from the sources and from `dist/`). */
export function findCriProto(start: string = __dirname): string {
  for (let dir = start; ; dir = dirname(dir)) {
    const candidate = join(dir, PROTO_RELATIVE);
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) throw new Error(`${PROTO_RELATIVE} not found above ${start}`);
  }
}

function loadMethods(protoPath: string | undefined): Map<string, Method> {
  if (protoPath === undefined && cachedMethods !== undefined) return cachedMethods;
  const file = protoPath ?? findCriProto();
  const definition = protoLoader.loadSync(file, {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
    includeDirs: [dirname(dirname(dirname(file)))],
  });
  const methods = new Map<string, Method>();
  for (const serviceName of SERVICES) {
    const service = definition[serviceName];
    if (service === undefined || 'format' in service) throw new Error(`${serviceName} missing from ${file}`);
    for (const [name, method] of Object.entries(service)) methods.set(name, method);
  }
  if (protoPath === undefined) cachedMethods = methods;
  return methods;
}

export function createCriClient(socketPath: string, options: { protoPath?: string } = {}): CriClient {
  const methods = loadMethods(options.protoPath);
  const client = new grpc.Client(`unix://${socketPath}`, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
  });

  const lookup = (name: string, streaming: boolean): Method => {
    const method = methods.get(name);
    if (method === undefined) throw new Error(`unknown CRI method ${name}`);
    if (method.responseStream !== streaming) {
      throw new Error(`${name} is ${method.responseStream ? 'server-streaming' : 'unary'}`);
    }
    return method;
  };
  const callOptions = (opts: CriCallOptions): grpc.CallOptions => ({
    deadline: Date.now() + (opts.timeoutMs ?? 30_000),
  });
  const metadataOf = (opts: CriCallOptions): grpc.Metadata => {
    const md = new grpc.Metadata();
    for (const [key, value] of Object.entries(opts.metadata ?? {})) md.set(key, value);
    return md;
  };

  return {
    socketPath,
    async call(name, request = {}, opts = {}) {
      const method = lookup(name, false);
      return new Promise<CriMessage>((resolve, reject) => {
        client.makeUnaryRequest<object, object>(
          method.path,
          method.requestSerialize,
          method.responseDeserialize,
          request,
          metadataOf(opts),
          callOptions(opts),
          (err, response) => {
            if (err) reject(err);
            else resolve(asMessage(response));
          },
        );
      });
    },
    async *stream(name, request = {}, opts = {}) {
      const method = lookup(name, true);
      const call = client.makeServerStreamRequest<object, object>(
        method.path,
        method.requestSerialize,
        method.responseDeserialize,
        request,
        metadataOf(opts),
        callOptions(opts),
      );
      const onAbort = (): void => {
        call.cancel();
      };
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      try {
        for await (const message of call as AsyncIterable<unknown>) yield asMessage(message);
      } finally {
        opts.signal?.removeEventListener('abort', onAbort);
        call.cancel();
      }
    },
    close() {
      client.close();
    },
  };
}

function asMessage(value: unknown): CriMessage {
  if (typeof value !== 'object' || value === null) throw new Error('CRI response is not a message');
  return value as CriMessage;
}

/** Reads a dotted path (`status.network.ip`) from a message; throws when a step is missing. */
export function field(message: CriMessage, path: string): unknown {
  let current: unknown = message;
  for (const part of path.split('.')) {
    if (typeof current !== 'object' || current === null || !(part in current)) {
      throw new Error(`field ${path} missing (at ${part})`);
    }
    current = (current as Record<string, unknown>)[part];
  }
  return current;
}

export function stringField(message: CriMessage, path: string): string {
  const value = field(message, path);
  if (typeof value !== 'string') throw new Error(`field ${path} is not a string`);
  return value;
}

export function numberField(message: CriMessage, path: string): number {
  const value = field(message, path);
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && /^-?\d+$/.test(value)) return Number(value);
  throw new Error(`field ${path} is not a number`);
}

export function listField(message: CriMessage, path: string): CriMessage[] {
  const value = field(message, path);
  if (!Array.isArray(value)) throw new Error(`field ${path} is not a list`);
  return value.map(asMessage);
}

export function bufferField(message: CriMessage, path: string): Buffer {
  const value = field(message, path);
  if (!Buffer.isBuffer(value)) throw new Error(`field ${path} is not bytes`);
  return value;
}
