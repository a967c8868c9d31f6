import { resolve } from 'node:path';
import { AuditWriter, type AuditWriterOptions } from './writer';

/** One holder's claim on a writer; the writer closes when the last lease is released. */
export interface WriterLease {
  readonly writer: AuditWriter;
  release(): Promise<void>;
}

const writers = new Map<string, { readonly writer: AuditWriter; refs: number }>();

/**
 * The writer for a path, shared within the process. A config reload builds a new audit interceptor while
 * the old one still finishes calls in flight; two writers on one file would fork the chain, so both get
 * the same writer (with the newest settings) instead.
 */
export function acquireAuditWriter(options: AuditWriterOptions): WriterLease {
  const key = resolve(options.path);
  let entry = writers.get(key);
  if (entry) {
    entry.writer.configure(options);
    entry.refs += 1;
  } else {
    entry = { writer: new AuditWriter(key, options, options.io), refs: 1 };
    writers.set(key, entry);
  }
  const held = entry;
  let released = false;
  return {
    writer: held.writer,
    release: async () => {
      if (released) return;
      released = true;
      held.refs -= 1;
      if (held.refs > 0) return;
      if (writers.get(key) === held) writers.delete(key);
      await held.writer.close();
    },
  };
}
