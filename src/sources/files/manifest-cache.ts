/** Parse results of manifest files kept while the files do not change (see util/stat-cache.ts). */
import { readFileSync, statSync } from 'node:fs';
import { RACY_MS, sameStamp, settled, stampOf, type FileStamp } from '../../util/stat-cache.js';
import { sameHostIPVerdicts } from '../node-addresses.js';
import { digestOf, parseManifestFile, statManifest, type FileResult, type FileResultCache, type LoadOptions } from './manifest-file.js';

/** Past the age at which a stamp identifies its content (RACY_MS), a young file is looked at again. */
const SETTLE_MARGIN_MS = 1_000;
/** The longest wait for a young file (one stamped further ahead is left to the re-list). */
const MAX_SETTLE_WAIT_MS = 60_000;

/**
 * Results of files that did not change, for a long-running controller whose periodic re-list
 * would otherwise parse and validate every manifest again (most of a no-op pass's cost).
 *
 * A file is unchanged when its device, inode, size, mtime and ctime are; as for acetate's own
 * files, a result is only reused when the file was already older than RACY_MS when it was read
 * (see util/stat-cache.ts).
 */
export class ManifestCache implements FileResultCache {
  private readonly entries = new Map<string, { stamp: FileStamp; nodeName?: string; result: FileResult }>();
  /** Results of files read while too young for their stamp to be trusted: kept only by keepIfSettled. */
  private readonly young = new Map<string, { stamp: FileStamp; nodeName?: string; result: FileResult }>();
  private readonly now: () => number;
  private changes = 0;

  constructor(opts: { now?: () => number } = {}) {
    this.now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  async load(file: string, opts: LoadOptions = {}): Promise<FileResult> {
    const st = statManifest(file, opts.within);
    if ('problems' in st) {
      if (this.entries.delete(file)) this.changes++;
      return st;
    }
    const hit = this.entries.get(file);
    if (hit && sameStamp(hit.stamp, st) && hit.nodeName === opts.nodeName && sameAddresses(hit.result, opts)) return hit.result;
    const result = parseManifestFile(file, st, opts);
    this.young.delete(file);
    if (settled(st, this.now())) {
      this.entries.set(file, { stamp: stampOf(st), nodeName: opts.nodeName, result });
      this.changes++;
    } else {
      if (this.entries.delete(file)) this.changes++;
      if (result.digest) this.young.set(file, { stamp: stampOf(st), nodeName: opts.nodeName, result });
    }
    return result;
  }

  /**
   * How long until the earliest file read while too young is old enough for keepSettled (a
   * margin past RACY_MS); undefined when there is none. At most MAX_SETTLE_WAIT_MS.
   */
  settleWaitMs(): number | undefined {
    let due = Infinity;
    for (const y of this.young.values()) due = Math.min(due, changedAt(y.stamp) + RACY_MS + SETTLE_MARGIN_MS);
    if (due === Infinity) return undefined;
    return Math.min(Math.max(due - this.now(), SETTLE_MARGIN_MS), MAX_SETTLE_WAIT_MS);
  }

  /**
   * keepIfSettled of every file read while too young; one stamped further ahead than
   * MAX_SETTLE_WAIT_MS (a clock set back, a file dated in the future) is left to the re-list.
   * Returns how many were kept.
   */
  keepSettled(): number {
    let kept = 0;
    for (const [file, y] of [...this.young]) {
      if (changedAt(y.stamp) - this.now() > MAX_SETTLE_WAIT_MS) this.young.delete(file);
      else if (this.keepIfSettled(file)) kept++;
    }
    return kept;
  }

  /**
   * Keeps the result of a file read while too young (see FileSource's settling), now that it is not: when its
   * stamp is still the one it was read at and its bytes are still the ones parsed (read again
   * and compared by digest: a stamp alone does not tell a young file's content). Not parsed or
   * validated again: the result is the one already in use, so nothing the source reported changes.
   * Returns whether it was kept.
   */
  keepIfSettled(file: string): boolean {
    const y = this.young.get(file);
    if (!y) return false;
    const st = statSync(file, { throwIfNoEntry: false });
    if (!st || !sameStamp(y.stamp, st)) {
      this.young.delete(file);
      return false;
    }
    if (!settled(st, this.now())) return false;
    this.young.delete(file);
    let bytes: Buffer;
    try {
      // The same inode and size as the file parsed (its stamp): no other file is read here.
      bytes = readFileSync(file);
    } catch {
      return false;
    }
    const after = statSync(file, { throwIfNoEntry: false });
    if (digestOf(bytes) !== y.result.digest || !after || !sameStamp(y.stamp, after)) return false;
    this.entries.set(file, y);
    this.changes++;
    return true;
  }

  /**
   * Whether `file` is, by its stamp, the file whose result is kept (settled when read, so the
   * stamp tells its content), that result is `result`, and it checked no hostIP (those are looked
   * at again: the node's addresses change). The file's path is followed as given: tree-stamps.ts.
   */
  isCurrent(file: string, result: FileResult | undefined): boolean {
    const hit = this.entries.get(file);
    // The very result the caller holds: an entry made by another read of the file (a plan's, while
    // the loop's watcher has not read it yet) is not what the caller's table says.
    if (!hit || hit.result !== result || hit.result.hostIPs) return false;
    const st = statSync(file, { throwIfNoEntry: false });
    return st !== undefined && sameStamp(hit.stamp, st);
  }

  /** Whether a result of `file` is kept (one read while too young for its stamp is not). */
  isKept(file: string): boolean {
    return this.entries.has(file);
  }

  /** Forget files that are no longer listed. */
  retainOnly(files: Iterable<string>): void {
    const keep = new Set(files);
    for (const f of this.entries.keys()) if (!keep.has(f) && this.entries.delete(f)) this.changes++;
    for (const f of this.young.keys()) if (!keep.has(f)) this.young.delete(f);
  }

  /** Counts changes of the entries: a saved copy (manifest-cache-file.ts) is out of date when it differs. */
  get generation(): number {
    return this.changes;
  }

  /** The entries, to be kept for another process (manifest-cache-file.ts). */
  exportEntries(): ManifestCacheEntry[] {
    return [...this.entries].map(([file, e]) => ({ file, stamp: e.stamp, ...(e.nodeName !== undefined ? { nodeName: e.nodeName } : {}), result: e.result }));
  }

  /** Entries another process exported: each is used only while its file's stamp is the same, as this cache's own. */
  importEntries(list: readonly ManifestCacheEntry[]): void {
    for (const e of list) if (!this.entries.has(e.file)) this.entries.set(e.file, { stamp: e.stamp, nodeName: e.nodeName, result: e.result });
  }
}

/** A result that checked hostIPs holds while each is still (or still not) the node's: addresses come and go under a running loop. */
function sameAddresses(r: FileResult, opts: LoadOptions): boolean {
  if (!r.hostIPs) return true;
  const node = opts.capacity?.addresses?.();
  return node ? sameHostIPVerdicts(r.hostIPs, node) : true;
}

function changedAt(s: FileStamp): number {
  return Math.max(s.mtimeMs, s.ctimeMs);
}

export interface ManifestCacheEntry {
  file: string;
  stamp: FileStamp;
  nodeName?: string;
  result: FileResult;
}
