/**
 * Digests already verified, per trust (a rule's keys and identities) and repository, so a container start answers
 * at once and a restarted proxy needs no registry for images it has verified before. Bounded (least recently used
 * go first) and persisted as one JSON file under the state directory, rewritten whole (write, then rename) after
 * each new entry. A cache that cannot be written still answers from memory; a file that cannot be read is started
 * afresh.
 */
import { readFileSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { LRUCache } from 'lru-cache';
import { errorMessage } from '../errors';
import type { Signer } from './outcome';

const FORMAT_VERSION = 1;

export interface CachedVerification {
  readonly signer: Signer;
  readonly signedDigest: string;
  readonly format: 'cosign' | 'bundle';
  /** When it was verified (RFC 3339). */
  readonly verifiedAt: string;
}

export interface VerifiedCacheOptions {
  /** The file it is kept in; undefined keeps it in memory only. */
  readonly file: string | undefined;
  readonly max: number;
  /** Told when the file cannot be read or written (the cache goes on in memory). */
  readonly onError: (problem: string) => void;
}

export function cacheKey(trust: string, repository: string, digest: string): string {
  return `${trust} ${repository}@${digest}`;
}

function isEntry(value: unknown): value is [string, CachedVerification] {
  if (!Array.isArray(value) || value.length !== 2 || typeof value[0] !== 'string') return false;
  const entry = value[1] as Partial<CachedVerification> | null;
  return typeof entry === 'object' && entry !== null && typeof entry.signer === 'object' && typeof entry.signedDigest === 'string';
}

export class VerifiedCache {
  private readonly entries: LRUCache<string, CachedVerification>;
  private writing: Promise<void> | undefined;
  private dirty = false;

  constructor(private readonly options: VerifiedCacheOptions) {
    this.entries = new LRUCache({ max: options.max });
    this.load();
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: string): CachedVerification | undefined {
    return this.entries.get(key);
  }

  set(key: string, value: CachedVerification): void {
    this.entries.set(key, value);
    this.persist();
  }

  /** Resolves once everything set so far is on disk (or has failed to get there). */
  async flush(): Promise<void> {
    while (this.writing !== undefined) await this.writing;
  }

  private load(): void {
    const { file } = this.options;
    if (file === undefined) return;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.options.onError(`cannot read ${file}: ${errorMessage(err)}`);
      return;
    }
    try {
      const parsed = JSON.parse(text) as { version?: unknown; entries?: unknown };
      if (parsed.version !== FORMAT_VERSION || !Array.isArray(parsed.entries)) throw new Error(`not a version ${FORMAT_VERSION} cache`);
      // Oldest first, so the most recently used end up most recent again.
      for (const entry of parsed.entries) if (isEntry(entry)) this.entries.set(entry[0], entry[1]);
    } catch (err) {
      this.options.onError(`ignoring ${file}: ${errorMessage(err)}`);
    }
  }

  private persist(): void {
    if (this.options.file === undefined) return;
    this.dirty = true;
    this.writing ??= this.writeWhileDirty(this.options.file).finally(() => (this.writing = undefined));
  }

  private async writeWhileDirty(file: string): Promise<void> {
    while (this.dirty) {
      this.dirty = false;
      // entries() yields the most recently used first; the file keeps oldest first.
      const entries = [...this.entries.entries()].reverse();
      const text = `${JSON.stringify({ version: FORMAT_VERSION, entries })}\n`;
      const temporary = `${file}.tmp`;
      try {
        await mkdir(dirname(file), { recursive: true, mode: 0o700 });
        await writeFile(temporary, text, { mode: 0o600 });
        await rename(temporary, file);
      } catch (err) {
        this.options.onError(`cannot write ${file}: ${errorMessage(err)}`);
      }
    }
  }
}
