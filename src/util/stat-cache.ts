/**
 * Parsed contents of small local files, re-read only when the file changed: a long-running
 * controller lists a thousand containers every resync, and their records, status files and runc
 * state files rarely change between two passes. A stat is ~1 µs; reading and parsing a JSON file
 * is 5–50 µs and garbage.
 *
 * A file is unchanged when its device, inode, size, mtime and ctime are. File times come from
 * a coarse clock, so a file rewritten within the same tick with the same size (and, after an
 * atomic rename, a reused inode number) could look unchanged: as git does with "racily clean"
 * index entries, a value is only kept when the file was already older than `racyMs` when read.
 * Values are shared between callers: treat them as read-only.
 */
import { statSync, type Stats } from 'node:fs';
import { readSmallFileNow } from './small-file.js';

export const RACY_MS = 2_000;

/**
 * A dir's mtime is the kernel's coarse clock (a tick of 4 ms here): a change in the same tick as a
 * stat leaves the same mtime. The host view's caches keyed by dir mtimes (runtime/walls/
 * host-listing.ts, etc-walk.ts) do not trust a dir changed this recently.
 */
export const RACY_DIR_MS = 50;

export interface StatCacheOptions {
  now?: () => number;
  racyMs?: number;
  /** At most this many files are remembered (the oldest are dropped). Default 100 000. */
  maxEntries?: number;
}

/** What identifies a version of a file: times in ms with sub-ms fractions (ns where the filesystem has them). */
export interface FileStamp {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
}

export function stampOf(st: Stats): FileStamp {
  return { dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs };
}

export function sameStamp(a: FileStamp, st: Stats): boolean {
  return a.ino === st.ino && a.size === st.size && a.mtimeMs === st.mtimeMs && a.ctimeMs === st.ctimeMs && a.dev === st.dev;
}

/** Whether a file last changed long enough before `nowMs` for its stamp to identify its content. */
export function settled(st: Stats, nowMs: number, racyMs = RACY_MS): boolean {
  return nowMs - Math.max(st.mtimeMs, st.ctimeMs) > racyMs;
}

export class ParsedFileCache<T> {
  private readonly entries = new Map<string, { stamp: FileStamp; value: T }>();
  private readonly parse: (text: string, file: string) => T;
  private readonly now: () => number;
  private readonly racyMs: number;
  private readonly maxEntries: number;
  private changes = 0;

  constructor(parse: (text: string, file: string) => T, opts: StatCacheOptions = {}) {
    this.parse = parse;
    this.now = opts.now ?? Date.now;
    this.racyMs = opts.racyMs ?? RACY_MS;
    this.maxEntries = opts.maxEntries ?? 100_000;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The parsed file, undefined when it does not exist. Read errors and parse errors are thrown. */
  read(file: string): T | undefined {
    const st = statSync(file, { throwIfNoEntry: false });
    if (!st) {
      if (this.entries.delete(file)) this.changes++;
      return undefined;
    }
    const hit = this.entries.get(file);
    if (hit && sameStamp(hit.stamp, st)) return hit.value;
    let text: string;
    try {
      text = readSmallFileNow(file);
    } catch (err) {
      this.entries.delete(file);
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined; // removed between stat and read
      throw err;
    }
    const value = this.parse(text, file);
    if (settled(st, this.now(), this.racyMs)) {
      if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
      this.entries.set(file, { stamp: stampOf(st), value });
      this.changes++;
    } else if (this.entries.delete(file)) this.changes++;
    return value;
  }

  forget(file: string): void {
    if (this.entries.delete(file)) this.changes++;
  }

  /** Counts changes of the remembered entries: a saved copy is out of date when it differs. */
  get generation(): number {
    return this.changes;
  }

  /**
   * The remembered entries whose file is under `dir` (all with none), to be kept for another
   * process (see runc/read-cache.ts): each is a settled file's stamp and parsed value.
   */
  exportEntries(dir?: string): [string, FileStamp, T][] {
    const out: [string, FileStamp, T][] = [];
    for (const [file, e] of this.entries) if (dir === undefined || file.startsWith(`${dir}/`)) out.push([file, e.stamp, e.value]);
    return out;
  }

  /**
   * Entries another process exported. Nothing is trusted beyond what this cache does itself: an
   * entry is used only while its file's stamp is the same (checked at every read).
   */
  importEntries(list: readonly [string, FileStamp, T][]): void {
    for (const [file, stamp, value] of list) {
      if (this.entries.has(file) || this.entries.size >= this.maxEntries) continue;
      this.entries.set(file, { stamp, value });
    }
  }
}
