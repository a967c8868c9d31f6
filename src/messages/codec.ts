import { join } from 'node:path';
import * as protobuf from 'protobufjs';
import { ProxyError, errorMessage } from '../errors';
import { packageFile } from '../package-files';

/** A decoded protobuf message as a plain object with snake_case keys; unknown fields are dropped. */
export type DecodedMessage = Readonly<Record<string, unknown>>;

/** The schema's path in the package; the release's single executable embeds it under the same name. */
export const CRI_PROTO_FILE = join('proto', 'runtime', 'v1', 'cri.proto');

let root: protobuf.Root | undefined;

/** The parsed CRI schema, loaded on first use and then kept. */
export function criRoot(): protobuf.Root {
  if (!root) {
    // keepCase: decoded keys must match the snake_case paths of the method table. The schema imports nothing.
    const loaded = protobuf.parse(packageFile(CRI_PROTO_FILE), new protobuf.Root(), { keepCase: true }).root;
    loaded.resolveAll();
    root = loaded;
  }
  return root;
}

const types = new Map<string, protobuf.Type>();

/** A message type by fully qualified name (e.g. `runtime.v1.RunPodSandboxRequest`). */
export function messageType(typeName: string): protobuf.Type {
  let type = types.get(typeName);
  if (!type) {
    const found = criRoot().lookup(typeName);
    if (!(found instanceof protobuf.Type)) {
      throw new ProxyError('MALFORMED_REQUEST', `unknown message type ${typeName}`);
    }
    type = found;
    types.set(typeName, type);
  }
  return type;
}

const toObjectOptions: protobuf.IConversionOptions = {
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
  let message: protobuf.Message;
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
