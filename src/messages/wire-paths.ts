/** Dotted snake_case field paths (as the method table writes them) turned into field numbers for the wire reader. */
import type * as Protobuf from 'protobufjs';
import { messageType, protobufjs } from './codec';

export interface ResolvedPath {
  readonly numbers: readonly number[];
  /** The type of the last field when it is a message (the item type of a repeated field). */
  readonly type: Protobuf.Type | undefined;
  readonly repeated: boolean;
}

/** Resolves `path` in `type`; every step but the last must be a singular message field. Throws on a wrong path. */
export function resolvePath(type: string | Protobuf.Type, path: string): ResolvedPath {
  let current = typeof type === 'string' ? messageType(type) : type;
  const numbers: number[] = [];
  const parts = path.split('.');
  for (const [i, part] of parts.entries()) {
    const field = current.fields[part];
    if (field === undefined) throw new Error(`${current.fullName.slice(1)} has no field "${part}" (path ${path})`);
    field.resolve();
    numbers.push(field.id);
    const resolved = field.resolvedType instanceof protobufjs().Type ? field.resolvedType : undefined;
    if (i === parts.length - 1) return { numbers, type: resolved, repeated: field.repeated };
    if (resolved === undefined || field.repeated || field.map) {
      throw new Error(`${current.fullName.slice(1)}.${part} is not a singular message (path ${path})`);
    }
    current = resolved;
  }
  throw new Error('empty field path');
}
