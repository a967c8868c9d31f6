import { join } from 'node:path';
import type * as Protobuf from 'protobufjs';
import { ProxyError, errorMessage } from '../errors';
import { packageFile } from '../package-files';

/** A decoded protobuf message as a plain object with snake_case keys; unknown fields are dropped. */
export type DecodedMessage = Readonly<Record<string, unknown>>;

/** The schema's path in the package; the release's single executable embeds it under the same name. */
export const CRI_PROTO_FILE = join('proto', 'runtime', 'v1', 'cri.proto');

let library: typeof Protobuf | undefined;

/**
 * protobufjs, loaded on first use: a proxy whose interceptors decode nothing never needs it (about 1.5 MB of
 * memory, bench/README.md). Synchronous, so that decoding stays synchronous; a bundle keeps it lazy too.
 */
export function protobufjs(): typeof Protobuf {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded only when a message is first read
  return (library ??= require('protobufjs') as typeof Protobuf);
}

let root: Protobuf.Root | undefined;

/** The parsed CRI schema, loaded on first use and then kept. */
export function criRoot(): Protobuf.Root {
  if (!root) {
    const protobuf = protobufjs();
    // keepCase: decoded keys must match the snake_case paths of the method table. The schema imports nothing.
    const loaded = protobuf.parse(packageFile(CRI_PROTO_FILE), new protobuf.Root(), { keepCase: true }).root;
    loaded.resolveAll();
    root = loaded;
  }
  return root;
}

const types = new Map<string, Protobuf.Type>();

/** A message type by fully qualified name (e.g. `runtime.v1.RunPodSandboxRequest`). */
export function messageType(typeName: string): Protobuf.Type {
  let type = types.get(typeName);
  if (!type) {
    const found = criRoot().lookup(typeName);
    if (!(found instanceof protobufjs().Type)) {
      throw new ProxyError('MALFORMED_REQUEST', `unknown message type ${typeName}`);
    }
    type = found;
    types.set(typeName, type);
  }
  return type;
}

const toObjectOptions: Protobuf.IConversionOptions = {
  longs: String,
  enums: String,
  bytes: Buffer,
  defaults: false,
};

/**
 * Loads the schema and builds each type's decoder (protobufjs generates them on first use), so that the first
 * calls after a start cost what later ones do.
 */
export function warmCodec(typeNames: Iterable<string>): void {
  for (const name of typeNames) {
    const type = messageType(name);
    type.toObject(type.decode(Buffer.alloc(0)), toObjectOptions);
  }
}

/** Decodes wire bytes into a plain object; fields the schema does not know are dropped. */
export function decodeMessage(typeName: string, bytes: Uint8Array): DecodedMessage {
  const type = messageType(typeName);
  // A Buffer makes protobufjs hand back `bytes` fields as Buffers (slices, no copy).
  const input = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let message: Protobuf.Message;
  try {
    message = type.decode(input);
  } catch (err) {
    throw new ProxyError('MALFORMED_REQUEST', `cannot decode ${typeName}: ${errorMessage(err)}`, { cause: err });
  }
  return type.toObject(message, toObjectOptions);
}

/** Encodes a plain object (snake_case keys, as decodeMessage returns them) into wire bytes. */
export function encodeMessage(typeName: string, obj: Readonly<Record<string, unknown>>): Buffer {
  const type = messageType(typeName);
  const bytes = type.encode(type.fromObject(obj)).finish();
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
