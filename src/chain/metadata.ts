/**
 * gRPC metadata as the proxy keeps it: the header list of a call exactly as decoded (lowercase keys, values
 * as sent; `-bin` values stay base64 text as on the wire). Pseudo-headers (`:path`, …) are not metadata and
 * are skipped by every accessor.
 */
export class Metadata {
  /** `fields` alternates names and values, as the HPACK decoder returns them. */
  constructor(private readonly fields: readonly string[]) {}

  /** The first value of `key`, or undefined. */
  get(key: string): string | undefined {
    if (key.startsWith(':')) return undefined;
    const fields = this.fields;
    for (let i = 0; i < fields.length; i += 2) if (fields[i] === key) return fields[i + 1];
    return undefined;
  }

  /** Every value of `key`, in order. */
  getAll(key: string): string[] {
    const values: string[] = [];
    if (key.startsWith(':')) return values;
    const fields = this.fields;
    for (let i = 0; i < fields.length; i += 2) if (fields[i] === key) values.push(fields[i + 1] as string);
    return values;
  }

  keys(): string[] {
    const keys = new Set<string>();
    const fields = this.fields;
    for (let i = 0; i < fields.length; i += 2) if (!(fields[i] as string).startsWith(':')) keys.add(fields[i] as string);
    return [...keys];
  }

  /** Key/value pairs in order, one per value. */
  entries(): [string, string][] {
    const out: [string, string][] = [];
    const fields = this.fields;
    for (let i = 0; i < fields.length; i += 2)
      if (!(fields[i] as string).startsWith(':')) out.push([fields[i] as string, fields[i + 1] as string]);
    return out;
  }
}

/** Metadata the chain adds for the runtime (a `traceparent`, say); a key set here replaces the client's. */
export class OutgoingMetadata {
  private readonly values = new Map<string, string>();

  set(key: string, value: string): void {
    this.values.set(key.toLowerCase(), value);
  }

  get(key: string): string | undefined {
    return this.values.get(key);
  }

  get size(): number {
    return this.values.size;
  }

  /** `fields` with every key set here replaced by its value (or appended). */
  applyTo(fields: readonly string[]): string[] {
    const out: string[] = [];
    for (let i = 0; i < fields.length; i += 2)
      if (!this.values.has(fields[i] as string)) out.push(fields[i] as string, fields[i + 1] as string);
    for (const [key, value] of this.values) out.push(key, value);
    return out;
  }
}
