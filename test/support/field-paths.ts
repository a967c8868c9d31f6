import * as protobuf from 'protobufjs';
import { messageType } from '../../src/messages/codec';

/** Why a dotted path does not reach a singular string field through singular message fields; undefined if it does. */
export function stringPathProblem(typeName: string, path: string): string | undefined {
  let type = messageType(typeName);
  const parts = path.split('.');
  for (const [i, part] of parts.entries()) {
    const field = type.fields[part];
    if (!field) return `${type.name} has no field ${part}`;
    if (field.repeated || field.map) return `${type.name}.${part} is repeated or a map`;
    const last = i === parts.length - 1;
    if (last) return field.type === 'string' ? undefined : `${type.name}.${part} is not a string`;
    field.resolve();
    if (!(field.resolvedType instanceof protobuf.Type)) return `${type.name}.${part} is not a message`;
    type = field.resolvedType;
  }
  return 'empty path';
}
