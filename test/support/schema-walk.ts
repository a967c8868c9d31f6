/** Walks the CRI schema's message fields, as the tests that hold doors and audit fields to the schema need. */
import * as protobuf from 'protobufjs';
import { CRI_PROTO_FILE } from '../../src/messages/codec';
import { packageFile } from '../../src/package-files';

export interface WalkedField {
  /** Dotted path from the walk's root; a repeated message field ends its step with `[]` (`config.mounts[].image`). */
  readonly path: string;
  /** The message type that declares the field, without the leading dot (`runtime.v1.Mount`). */
  readonly owner: string;
  readonly field: protobuf.Field;
  /** The field's message type (its value type for a map), if it is one. */
  readonly type: protobuf.Type | undefined;
}

/** A fresh copy of the schema, loaded as the codec loads it (snake_case keys), free to be changed by a test. */
export function loadSchema(): protobuf.Root {
  const root = protobuf.parse(packageFile(CRI_PROTO_FILE), new protobuf.Root(), { keepCase: true }).root;
  root.resolveAll();
  return root;
}

/**
 * Every field reachable from `root`, depth first, in declaration order. `descend` says whether to go into a message
 * field's own fields; a type is never entered again below itself.
 */
export function walkFields(root: protobuf.Type, descend: (field: WalkedField) => boolean = () => true): WalkedField[] {
  const out: WalkedField[] = [];
  const visit = (type: protobuf.Type, prefix: string, stack: readonly protobuf.Type[]): void => {
    for (const field of type.fieldsArray) {
      field.resolve();
      const message = field.resolvedType instanceof protobuf.Type ? field.resolvedType : undefined;
      const step = field.repeated && message !== undefined ? `${field.name}[]` : field.name;
      const walked = { path: prefix === '' ? step : `${prefix}.${step}`, owner: type.fullName.slice(1), field, type: message };
      out.push(walked);
      if (message !== undefined && !field.map && !stack.includes(message) && descend(walked)) {
        visit(message, walked.path, [...stack, message]);
      }
    }
  };
  visit(root, '', [root]);
  return out;
}
