/**
 * Merging list answers at the wire level: the items of each backend's repeated field are carried over as the
 * exact bytes that backend sent (fields unknown to this schema included); only the envelope is new. Items that
 * share a key (an image ID, a metric name, a mount point) appear once, the first backend's copy winning.
 */
import { ProxyError } from '../../errors';
import { stringAt, wireFields, WireFormatError } from '../../messages/protobuf-wire';
import { resolvePath } from '../../messages/wire-paths';

/** A repeated field of a list response; `uniqueBy` is a string path inside the item. */
export interface ListField {
  readonly field: string;
  readonly uniqueBy?: string;
}

interface CompiledList {
  readonly number: number;
  readonly key: readonly number[] | undefined;
}

export interface ListMerge {
  readonly responseType: string;
  readonly lists: readonly CompiledList[];
}

export function compileListMerge(responseType: string, lists: readonly ListField[]): ListMerge {
  return {
    responseType,
    lists: lists.map((list) => {
      const field = resolvePath(responseType, list.field);
      const [number] = field.numbers;
      if (number === undefined || field.numbers.length !== 1 || !field.repeated || field.type === undefined) {
        throw new Error(`${responseType}.${list.field} is not a top-level repeated message field`);
      }
      return { number, key: list.uniqueBy === undefined ? undefined : resolvePath(field.type, list.uniqueBy).numbers };
    }),
  };
}

interface Taken {
  readonly parts: Buffer[];
  readonly items: number;
  readonly kept: number;
}

/** Remembers the keys already given out, across the answers of one call (or the messages of one stream). */
export class ListCollector {
  private readonly seen: Map<number, Set<string>>;

  constructor(private readonly merge: ListMerge) {
    this.seen = new Map(merge.lists.map((l) => [l.number, new Set<string>()]));
  }

  /** The entries of `body` to keep: new items, and the other fields when `keepOthers`. */
  take(backend: string, body: Buffer, keepOthers: boolean): Taken {
    const parts: Buffer[] = [];
    let items = 0;
    let kept = 0;
    try {
      for (const f of wireFields(body)) {
        const list = this.merge.lists.find((l) => l.number === f.number);
        const entry = body.subarray(f.start, f.end);
        if (list === undefined) {
          if (keepOthers) parts.push(entry);
          continue;
        }
        items++;
        const key = list.key === undefined ? undefined : stringAt(body.subarray(f.valueStart, f.end), list.key);
        // An item without its key cannot be a duplicate of anything: keep it.
        if (key !== undefined && key !== '') {
          const seen = this.seen.get(list.number) as Set<string>;
          if (seen.has(key)) continue;
          seen.add(key);
        }
        kept++;
        parts.push(entry);
      }
    } catch (err) {
      if (!(err instanceof WireFormatError)) throw err;
      throw new ProxyError('UPSTREAM_PROTOCOL', `backend "${backend}" sent a malformed ${this.merge.responseType}: ${err.message}`, {
        cause: err,
      });
    }
    return { parts, items, kept };
  }
}

/**
 * One list answer from every backend's (in backend order, the default first). Fields other than the lists
 * come from the first answer only.
 */
export function mergeListBodies(
  merge: ListMerge,
  answers: readonly { readonly backend: string; readonly body: Buffer | undefined }[],
): Buffer {
  const collector = new ListCollector(merge);
  const parts = answers.flatMap((a, i) => collector.take(a.backend, a.body ?? Buffer.alloc(0), i === 0).parts);
  return Buffer.concat(parts);
}

/**
 * One message of a merged stream: unchanged when all its items are new, without the repeated ones otherwise,
 * and undefined when nothing new is left in it (a list message never goes out empty).
 */
export function filterStreamMessage(collector: ListCollector, backend: string, body: Buffer): Buffer | undefined {
  const { parts, items, kept } = collector.take(backend, body, true);
  if (kept === items) return body;
  if (kept === 0) return undefined;
  return Buffer.concat(parts);
}
