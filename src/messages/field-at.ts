/** The string at a dotted path (e.g. `config.metadata.name`), or undefined if absent or not a string. */
export function fieldAt(msg: Readonly<Record<string, unknown>> | undefined, path: string): string | undefined {
  let value: unknown = msg;
  let start = 0;
  while (value !== null && typeof value === 'object') {
    const dot = path.indexOf('.', start);
    const key = dot === -1 ? path.slice(start) : path.slice(start, dot);
    // Own properties only: a path must never reach into Object.prototype.
    if (!Object.hasOwn(value, key)) return undefined;
    value = (value as Record<string, unknown>)[key];
    if (dot === -1) return typeof value === 'string' ? value : undefined;
    start = dot + 1;
  }
  return undefined;
}

/** A message found by `messagesAt`, with the concrete path that leads to it (`config.mounts[1].image`). */
export interface FoundMessage {
  readonly message: Readonly<Record<string, unknown>>;
  readonly at: string;
}

/**
 * Every message at a dotted path whose `[]` steps go through each item of a repeated field (`config.mounts[].image`),
 * in order. With `present`, the last step yields an empty message where its parent exists but the field is absent,
 * so a caller can tell "not given" from "no parent".
 */
export function messagesAt(msg: Readonly<Record<string, unknown>> | undefined, path: string, present = false): FoundMessage[] {
  let found: FoundMessage[] = msg === undefined ? [] : [{ message: msg, at: '' }];
  const steps = path.split('.');
  for (const [i, step] of steps.entries()) {
    const repeated = step.endsWith('[]');
    const key = repeated ? step.slice(0, -2) : step;
    const last = i === steps.length - 1;
    found = found.flatMap(({ message, at }) => {
      const where = at === '' ? key : `${at}.${key}`;
      // Own properties only: a path must never reach into Object.prototype.
      const value = Object.hasOwn(message, key) ? message[key] : undefined;
      if (repeated) {
        if (!Array.isArray(value)) return [];
        return value.flatMap((item: unknown, n) => (isMessage(item) ? [{ message: item, at: `${where}[${n}]` }] : []));
      }
      if (isMessage(value)) return [{ message: value, at: where }];
      return last && present && value === undefined ? [{ message: {}, at: where }] : [];
    });
  }
  return found;
}

function isMessage(value: unknown): value is Readonly<Record<string, unknown>> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value);
}
