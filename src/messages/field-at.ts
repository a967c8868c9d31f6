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
