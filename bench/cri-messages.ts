/**
 * CRI messages as bytes, straight from the schema with protobufjs. The bench treats the proxy as a black box,
 * so it does not borrow the proxy's own codec or framing: whatever src/proxy becomes, the bench stays the same.
 */
import * as path from 'node:path';
import * as protobuf from 'protobufjs';
import { repoRoot } from './paths';

let root: protobuf.Root | undefined;

function schema(): protobuf.Root {
  if (root === undefined) {
    const loaded = new protobuf.Root();
    loaded.loadSync(path.join(repoRoot(), 'proto', 'runtime', 'v1', 'cri.proto'), { keepCase: true });
    loaded.resolveAll();
    root = loaded;
  }
  return root;
}

/** Encodes `fields` (snake_case as in the schema; enums by name, int64 as strings) as `runtime.v1.<type>`. */
export function encode(type: string, fields: Readonly<Record<string, unknown>>): Buffer {
  const messageType = schema().lookupType(`runtime.v1.${type}`);
  const bytes = messageType.encode(messageType.fromObject(fields)).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Decodes `runtime.v1.<type>` to a plain object in the same spelling `encode` takes (enums by name, int64 as strings). */
export function decode(type: string, bytes: Buffer): Record<string, unknown> {
  const messageType = schema().lookupType(`runtime.v1.${type}`);
  return messageType.toObject(messageType.decode(bytes), { enums: String, longs: String, defaults: false });
}

/** Bytes of the gRPC length prefix (compressed flag and a 32-bit length). */
export const GRPC_PREFIX_BYTES = 5;

/** One uncompressed gRPC message with its length prefix. */
export function frame(message: Buffer): Buffer {
  const prefix = Buffer.alloc(GRPC_PREFIX_BYTES);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}
