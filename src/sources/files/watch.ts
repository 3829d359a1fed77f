/**
 * FileSource: a directory tree of manifests as a DesiredSource for `acetate run`, kept up to date
 * by a TreeWatcher (inotify, debounced) and a periodic full re-list (`relistMs`) that catches
 * what the watcher missed.
 *
 * - A file whose containers and problems did not change emits nothing.
 * - Ignored: dotfiles and dot-directories (.git), editor temporary and backup files, anything that
 *   is not .yaml/.yml/.json (isManifestPath / isIgnoredPath).
 * - Last known good: see FileTable.
 * - Safety: judgeCompleteness decides when the snapshot is complete (may destroy), exactly as for
 *   `apply`/`plan`: not while the directory is missing, unreadable or declares no valid container,
 *   unless allowEmpty.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { DesiredSource, SourceProblem } from '../../contracts/source.js';
import { realClock, type Clock, type TimerHandle } from '../../contracts/clock.js';
import type { RootState } from './completeness.js';
import { realRoot } from './contained.js';
import { lastReadOf, unchangedSinceRead, type LastRead } from './tree-stamps.js';
import { FileTable } from './file-table.js';
import { ManifestCache } from './manifest-cache.js';
import { loadManifestFile, type FileResult } from './manifest-file.js';
import { readManifestTree } from './read-tree.js';
import { judged, loadManifestDirUnlinked, snapshotOfTree, type DirSnapshot } from './load.js';
import { loadManifestCacheFile, saveManifestCacheFile } from './manifest-cache-file.js';
import { TreeWatcher, type WatchBatch } from './tree-watcher.js';

import type { FileSnapshot, FileSourceOptions } from './file-source-types.js';
export type { FileSnapshot, FileSourceOptions } from './file-source-types.js';

export class FileSource implements DesiredSource {
  readonly name: string;
  readonly root: string;
  private readonly opts: FileSourceOptions;
  private readonly clock: Clock;
  private readonly relistMs: number;
  /** Warnings already reported (by text). */
  private warned = new Set<string>();
  private readonly table = new FileTable();
  private readonly manifestCache = new ManifestCache();
  /** The cache's generation when last saved to opts.persistedCache. */
  private savedGeneration = 0;
  private dirProblems: SourceProblem[] = [];
  /** Special files with a manifest name (FIFOs...), skipped: reported once through onWarning. */
  private dirWarnings: SourceProblem[] = [];
  private rootState: RootState = { kind: 'not-read' };
  /** The root, resolved at the last re-list: files are read only from inside it (contained.ts). */
  private rootReal: string;
  /** What the last full read listed, to tell whether the tree changed since (readForAsker). */
  private lastRead?: LastRead;
  private readonly watcher: TreeWatcher;
  private onChange?: (keys: string[] | 'all') => void;
  private stopped = false;
  private cached?: FileSnapshot;
  private relistTimer?: TimerHandle;
  /** When the results of files read while too young to be cached are kept (settleSoon). */
  private settleTimer?: TimerHandle;
  /** Serializes reads so that results are applied in order. */
  private chain: Promise<void> = Promise.resolve();
  /** Reads of the whole tree readForAsker made (for tests). */
  readsForAskers = 0;
  /** How many change notifications were emitted (for tests and metrics). */
  changeCount = 0;

  constructor(opts: FileSourceOptions) {
    this.root = path.resolve(opts.dir);
    this.rootReal = this.root;
    this.name = `files:${this.root}`;
    this.clock = opts.clock ?? realClock;
    // A safety net under inotify: a re-list stats (and resolves) every file, ~6 µs each, which every
    // 30 s was most of an idle loop's CPU at thousands of manifests (issue 25).
    this.relistMs = opts.relistMs ?? 300_000;
    this.opts = opts;
    if (opts.persistedCache) loadManifestCacheFile(opts.persistedCache.file, opts.persistedCache.fingerprint, this.manifestCache);
    this.watcher = new TreeWatcher({
      root: this.root,
      clock: this.clock,
      debounceMs: opts.debounceMs ?? 100,
      onError: opts.onError,
      onBatch: (b) => void this.onBatch(b),
      isKnown: (file) => this.table.has(file),
    });
  }

  async start(onChange: (keys: string[] | 'all') => void): Promise<void> {
    this.onChange = onChange;
    this.stopped = false;
    await this.relist({ notify: false });
    if (this.opts.watch === false) return;
    await this.watcher.start();
    // Swapped (a symlink renamed over the root) between the first read and the watch: read again now.
    if (realRoot(this.root) !== this.rootReal) await this.relist();
    this.scheduleRelist();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.relistTimer) this.clock.clearTimeout(this.relistTimer);
    this.relistTimer = undefined;
    if (this.settleTimer) this.clock.clearTimeout(this.settleTimer);
    this.settleTimer = undefined;
    await this.watcher.close();
    await this.chain.catch(() => undefined);
  }

  synced(): boolean {
    return this.rootState.kind !== 'not-read';
  }

  snapshot(): FileSnapshot {
    this.cached ??= this.compute();
    return this.cached;
  }

  /** Results per file, sorted by path. */
  fileResults(): FileResult[] {
    return this.table.results();
  }

  /**
   * The manifests as `acetate plan` reads them now, for the loop planning an asker's plan
   * (cli/loop-planner.ts), changing nothing the loop acts on: when the tree's stamps say nothing
   * changed since the last full read (tree-stamps.ts), the results that read left (asLoaded); else
   * a read of its own, as `plan` makes it, which this source's table never takes (a file half
   * written when the ask came must not be acted on before the watcher's quiet period). A tree
   * with a symlink is not read for an asker ('has links').
   */
  async readForAsker(): Promise<DirSnapshot | 'has links'> {
    let kept: DirSnapshot | undefined;
    await this.enqueue(async () => {
      const read = this.lastRead;
      const same = read && this.table.fileNames().length === read.files.length && unchangedSinceRead(read, this.manifestCache, (f) => this.table.resultOf(f));
      if (same) kept = this.asLoaded();
    });
    if (kept) return kept;
    this.readsForAskers++;
    const { allowEmpty, nodeName, capacity } = this.opts;
    return loadManifestDirUnlinked(this.root, { allowEmpty: !!allowEmpty, nodeName, capacity, cache: this.manifestCache });
  }

  /**
   * The snapshot `acetate plan` makes of the files as last read (snapshotOfTree, in the listing's
   * order), not this source's own: without the last known good keys of failing files (FileTable),
   * which only a running loop remembers. What the loop plans an asker's `plan` with.
   */
  asLoaded(): DirSnapshot {
    const order = new Map((this.lastRead?.files ?? []).map((f, i) => [f, i]));
    const at = (file: string): number => order.get(file) ?? order.size;
    const results = this.table.results().sort((a, b) => at(a.file) - at(b.file));
    const listing = { rootState: this.rootState, problems: this.dirProblems, warnings: this.dirWarnings };
    return snapshotOfTree(this.root, listing, results, this.opts.allowEmpty ?? false);
  }

  /** Reads the whole tree again; notifies the keys that changed. Public so tests and SIGHUP can force it. */
  relist(opts: { notify?: boolean } = {}): Promise<void> {
    return this.enqueue(async () => {
      const before = this.snapshotMeta();
      const changed = new Set<string>();
      const listed = await readManifestTree(this.root);
      const wasLost = this.rootState.kind === 'missing' || this.rootState.kind === 'unreadable';
      this.rootState = listed.rootState;
      const moved = this.rootReal !== listed.rootReal;
      this.rootReal = listed.rootReal;
      this.dirProblems = listed.problems;
      this.dirWarnings = listed.warnings;
      const seen = new Set(listed.files);
      for (const file of this.table.fileNames()) if (!seen.has(file)) this.table.remove(file, changed);
      const results = await Promise.all(listed.files.map((f) => this.load(f)));
      this.manifestCache.retainOnly(listed.files);
      for (const r of results) this.table.apply(r, changed);
      this.lastRead = lastReadOf(this.root, listed); // once the table holds what it listed
      this.settleSoon();
      await this.savePersistedCache();
      this.cached = undefined;
      if (opts.notify !== false) this.notify(changed, before !== this.snapshotMeta());
      // The directory came back, or the root is now another directory (a symlink swapped): the watcher may have lost it.
      if ((wasLost || moved) && listed.rootState.kind === 'ok' && this.watcher.running && !this.stopped) await this.watcher.restart();
    });
  }

  /** After a full read, when the cache changed since it was loaded or saved. */
  private async savePersistedCache(): Promise<void> {
    const p = this.opts.persistedCache;
    if (!p || this.manifestCache.generation === this.savedGeneration) return;
    this.savedGeneration = this.manifestCache.generation;
    await saveManifestCacheFile(p.file, p.fingerprint, this.manifestCache);
  }

  /**
   * Files read soon after a change are too young for their stamp to identify their content, so
   * every `acetate plan` parsed them again until the next re-list, minutes later (0.5 s instead
   * of 0.3 s at 2,500). Once old enough their results are kept (ManifestCache.keepSettled: not
   * parsed or validated again) and the persisted cache saved. One timer, for the earliest.
   */
  private settleSoon(): void {
    if (this.settleTimer || this.stopped) return;
    const wait = this.manifestCache.settleWaitMs();
    if (wait === undefined) return;
    this.settleTimer = this.clock.setTimeout(() => {
      this.settleTimer = undefined;
      void this.enqueue(async () => {
        if (this.stopped) return;
        if (this.manifestCache.keepSettled()) await this.savePersistedCache();
        this.settleSoon();
      });
    }, wait);
  }

  private load(file: string): Promise<FileResult> {
    return loadManifestFile(file, { nodeName: this.opts.nodeName, cache: this.manifestCache, capacity: this.opts.capacity, within: this.rootReal });
  }

  private snapshotMeta(): string {
    const s = this.snapshot();
    return `${s.complete}|${s.incompleteReason ?? ''}`;
  }

  private enqueue(fn: () => Promise<void>): Promise<void> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch((err: unknown) => this.opts.onError?.(err as Error));
    return next;
  }

  private notify(changed: Set<string>, metaChanged: boolean): void {
    if (!this.onChange || this.stopped) return;
    if (metaChanged) {
      this.changeCount++;
      this.onChange('all');
    } else if (changed.size > 0) {
      this.changeCount++;
      this.onChange([...changed].sort());
    }
  }

  private compute(): FileSnapshot {
    const snap = this.table.merge(this.dirProblems);
    this.reportNewWarnings([...this.dirWarnings, ...snap.warnings]);
    return judged(snap, this.root, { rootState: this.rootState, problems: this.dirProblems }, this.opts.allowEmpty ?? false);
  }

  private reportNewWarnings(warnings: SourceProblem[]): void {
    const warned = new Set<string>();
    for (const w of warnings) {
      const text = `${w.origin}:${w.line ?? ''}:${w.message}`;
      warned.add(text);
      if (!this.warned.has(text)) this.opts.onWarning?.(w);
    }
    this.warned = warned;
  }

  /** Reads the files the watcher saw change (or everything again). */
  private onBatch(batch: WatchBatch): Promise<void> {
    if (batch.full) return this.relist();
    return this.enqueue(async () => {
      if (this.stopped) return;
      const before = this.snapshotMeta();
      const changed = new Set<string>();
      for (const file of batch.files) {
        const isFile = await fs.stat(file).then(
          (st) => st.isFile(),
          () => false,
        );
        if (!isFile) {
          if (this.table.has(file)) this.table.remove(file, changed);
          continue;
        }
        this.table.apply(await this.load(file), changed);
      }
      this.settleSoon();
      this.cached = undefined;
      this.notify(changed, this.snapshotMeta() !== before);
    });
  }

  private scheduleRelist(): void {
    if (this.stopped || this.relistMs <= 0) return;
    this.relistTimer = this.clock.setTimeout(() => {
      this.relistTimer = undefined;
      void this.relist()
        .catch(() => undefined) // reported through onError by enqueue()
        .finally(() => this.scheduleRelist());
    }, this.relistMs);
  }
}
