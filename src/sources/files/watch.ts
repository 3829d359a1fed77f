/**
 * FileSource: a directory tree of manifests as a DesiredSource, kept up to date with chokidar.
 *
 * - Changes are debounced: the files touched within `debounceMs` of each other are read once, so
 *   an editor's or git's atomic save (write a temporary file, rename it over the manifest) is one
 *   change. A file whose containers and problems did not change emits nothing.
 * - Ignored: dotfiles and dot-directories (.git), editor temporary and backup files, anything that
 *   is not .yaml/.yml/.json (isManifestPath / isIgnoredPath).
 * - Last known good: a file that becomes invalid keeps the keys it declared when it was last valid
 *   protected (their containers are left as last applied) until it is fixed or deleted. Deleting
 *   a file is the only way to destroy its containers.
 * - A periodic full re-list (`relistMs`) catches what the watcher missed.
 * - Safety: while the directory is missing, unreadable or declares no valid container, the snapshot
 *   is not complete (nothing gets destroyed) unless allowEmpty.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import { canonicalJson } from '../../api/hash.js';
import type { DesiredContainer } from '../../api/types.js';
import type { DesiredSnapshot, DesiredSource, SourceProblem } from '../../contracts/source.js';
import { listManifestFiles, loadManifestFile, ManifestCache, mergeFileResults, type FileResult } from './load.js';
import { isIgnoredPath, isManifestPath } from './ignore.js';
import { realClock, type Clock, type TimerHandle } from '../../contracts/clock.js';
import type { NodeCapacity } from '../kube/desired.js';

export interface FileSourceOptions {
  dir: string;
  /** Allow a missing/empty directory to mean "no containers" (destroy everything). */
  allowEmpty?: boolean;
  /** This node's name (manifests for other nodes are not desired here). */
  nodeName?: string;
  /** Quiet period before changed files are read. Default 100 ms. */
  debounceMs?: number;
  /** Full re-list period; 0 disables. Default 30 s. */
  relistMs?: number;
  /** Timers (debounce, re-list). Default: the real clock. */
  clock?: Clock;
  /** Called with watcher errors (the source keeps going; the re-list repairs). */
  onError?: (err: Error) => void;
  /** Use polling (for file systems without inotify). */
  usePolling?: boolean;
  /** What this node can give a container (larger requests are invalid). Default: not checked. */
  capacity?: NodeCapacity;
  /** Called once per new warning (a skipped document or file). */
  onWarning?: (w: SourceProblem) => void;
}

/** A file source snapshot: the DesiredSnapshot plus what `acetate get`/metrics want to show. */
export interface FileSnapshot extends DesiredSnapshot {
  failingOrigins: Set<string>;
  incompleteReason?: string;
  files: FileResult[];
}

interface FileEntry {
  result: FileResult;
  /** canonical JSON of containers + problems: a reload that yields the same emits nothing. */
  fingerprint: string;
}

function fingerprint(r: FileResult): string {
  return canonicalJson({ c: r.containers, p: r.problems, w: r.warnings });
}

export class FileSource implements DesiredSource {
  readonly name: string;
  readonly root: string;
  private readonly opts: Required<Omit<FileSourceOptions, 'nodeName' | 'onError' | 'capacity' | 'onWarning'>> & Pick<FileSourceOptions, 'nodeName' | 'onError' | 'capacity' | 'onWarning'>;
  /** Warnings already reported (by text). */
  private warned = new Set<string>();
  private readonly clock: Clock;
  private files = new Map<string, FileEntry>();
  private readonly manifestCache = new ManifestCache();
  /** Keys each file declared the last time it loaded without problems. */
  private lastGood = new Map<string, Set<string>>();
  private dirProblems: SourceProblem[] = [];
  /** Special files with a manifest name (FIFOs...), skipped: reported once through onWarning. */
  private dirWarnings: SourceProblem[] = [];
  private rootState: 'ok' | 'missing' | 'unreadable' | 'unknown' = 'unknown';
  private watcher?: FSWatcher;
  private onChange?: (keys: string[] | 'all') => void;
  private isSynced = false;
  private stopped = false;
  private cached?: FileSnapshot;
  private pending = new Set<string>();
  private pendingFull = false;
  private debounceTimer?: TimerHandle;
  private firstPendingAt?: number;
  private relistTimer?: TimerHandle;
  /** Serializes reads so that results are applied in order. */
  private chain: Promise<void> = Promise.resolve();
  /** How many change notifications were emitted (for tests and metrics). */
  changeCount = 0;

  constructor(opts: FileSourceOptions) {
    this.root = path.resolve(opts.dir);
    this.name = `files:${this.root}`;
    this.clock = opts.clock ?? realClock;
    this.opts = {
      dir: this.root,
      allowEmpty: opts.allowEmpty ?? false,
      nodeName: opts.nodeName,
      debounceMs: opts.debounceMs ?? 100,
      relistMs: opts.relistMs ?? 30_000,
      clock: this.clock,
      onError: opts.onError,
      usePolling: opts.usePolling ?? false,
      capacity: opts.capacity,
      onWarning: opts.onWarning,
    };
  }

  async start(onChange: (keys: string[] | 'all') => void): Promise<void> {
    this.onChange = onChange;
    this.stopped = false;
    await this.relist({ notify: false });
    this.isSynced = true;
    this.cached = undefined;
    await this.startWatcher();
    this.scheduleRelist();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.debounceTimer) this.clock.clearTimeout(this.debounceTimer);
    if (this.relistTimer) this.clock.clearTimeout(this.relistTimer);
    this.debounceTimer = undefined;
    this.relistTimer = undefined;
    const w = this.watcher;
    this.watcher = undefined;
    if (w) await w.close();
    await this.chain.catch(() => undefined);
  }

  synced(): boolean {
    return this.isSynced;
  }

  snapshot(): FileSnapshot {
    if (!this.cached) this.cached = this.compute();
    return this.cached;
  }

  /** Results per file, sorted by path. */
  fileResults(): FileResult[] {
    return [...this.files.values()].map((e) => e.result).sort((a, b) => (a.file < b.file ? -1 : 1));
  }

  /** Reads the whole tree again; notifies the keys that changed. Public so tests and SIGHUP can force it. */
  relist(opts: { notify?: boolean } = {}): Promise<void> {
    return this.enqueue(async () => {
      const before = this.snapshotMeta();
      const changed = new Set<string>();
      let st;
      let rootState: typeof this.rootState = 'ok';
      try {
        st = await fs.stat(this.root);
      } catch (err) {
        rootState = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : 'unreadable';
      }
      let listed: { files: string[]; problems: SourceProblem[]; warnings?: SourceProblem[] } = { files: [], problems: [] };
      if (rootState === 'ok' && st) {
        if (st.isDirectory()) {
          listed = await listManifestFiles(this.root);
          if (listed.problems.some((p) => p.origin === this.root)) rootState = 'unreadable';
        } else {
          listed = { files: [this.root], problems: [] };
        }
      } else {
        listed.problems.push({
          origin: this.root,
          kind: 'unreadable',
          keys: [],
          message: `manifest directory ${this.root} cannot be read: ${rootState === 'missing' ? 'ENOENT' : 'unreadable'}`,
        });
      }
      const wasMissing = this.rootState === 'missing' || this.rootState === 'unreadable';
      this.rootState = rootState;
      this.dirProblems = listed.problems;
      this.dirWarnings = listed.warnings ?? [];
      const seen = new Set(listed.files);
      for (const file of [...this.files.keys()]) {
        if (!seen.has(file)) this.removeFile(file, changed);
      }
      const results = await Promise.all(listed.files.map((f) => loadManifestFile(f, { nodeName: this.opts.nodeName, cache: this.manifestCache, capacity: this.opts.capacity })));
      this.manifestCache.retainOnly(listed.files);
      for (const r of results) this.applyResult(r, changed);
      this.cached = undefined;
      const after = this.snapshotMeta();
      if (opts.notify !== false) this.notify(changed, before !== after);
      // The directory came back: the watcher may have lost it.
      if (wasMissing && rootState === 'ok' && this.watcher && !this.stopped) await this.restartWatcher();
    });
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

  private keysOf(file: string): Set<string> {
    const out = new Set<string>(this.lastGood.get(file) ?? []);
    const e = this.files.get(file);
    if (e) {
      for (const c of e.result.containers) out.add(c.key);
      for (const p of e.result.problems) for (const k of p.keys) out.add(k);
    }
    return out;
  }

  private removeFile(file: string, changed: Set<string>): void {
    for (const k of this.keysOf(file)) changed.add(k);
    this.files.delete(file);
    this.lastGood.delete(file);
    this.cached = undefined;
  }

  private applyResult(r: FileResult, changed: Set<string>): void {
    const prev = this.files.get(r.file);
    if (prev && prev.result === r) return; // the same result, from the manifest cache
    const fp = fingerprint(r);
    if (prev && prev.fingerprint === fp) {
      prev.result = r; // same content: later cache hits compare by identity
      return;
    }
    for (const k of this.keysOf(r.file)) changed.add(k);
    this.files.set(r.file, { result: r, fingerprint: fp });
    const valid = new Set(r.containers.map((c) => c.key));
    if (r.problems.length === 0) {
      this.lastGood.set(r.file, valid);
    } else {
      const lg = this.lastGood.get(r.file) ?? new Set<string>();
      for (const k of valid) lg.add(k);
      this.lastGood.set(r.file, lg);
    }
    for (const k of this.keysOf(r.file)) changed.add(k);
    this.cached = undefined;
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
    const results = this.fileResults();
    const snap = mergeFileResults(results, { allowEmpty: this.opts.allowEmpty, nodeName: this.opts.nodeName, dirProblems: this.dirProblems });
    const warned = new Set<string>();
    for (const w of [...this.dirWarnings, ...snap.warnings]) {
      const text = `${w.origin}:${w.line ?? ''}:${w.message}`;
      warned.add(text);
      if (!this.warned.has(text)) this.opts.onWarning?.(w);
    }
    this.warned = warned;
    // Last known good: the keys a failing file declared when it was last valid stay protected.
    for (const r of results) {
      if (r.problems.length === 0) continue;
      const valid = new Set(r.containers.map((c) => c.key));
      for (const k of this.lastGood.get(r.file) ?? []) {
        if (valid.has(k)) continue;
        snap.protectedKeys.add(k);
      }
      snap.failingOrigins.add(r.file);
    }
    for (const k of snap.protectedKeys) snap.containers.delete(k);
    let complete = this.isSynced && snap.complete;
    let incompleteReason: string | undefined = snap.incompleteReason;
    if (!this.isSynced) incompleteReason = 'the manifest directory has not been read yet';
    else if (this.rootState !== 'ok') {
      complete = this.opts.allowEmpty;
      incompleteReason = complete ? undefined : `manifest directory ${this.root} is ${this.rootState === 'missing' ? 'missing' : 'unreadable'}`;
    } else if (snap.containers.size === 0 && snap.protectedKeys.size === 0 && !this.opts.allowEmpty) {
      complete = false;
      incompleteReason = results.length === 0 ? `no manifest files in ${this.root}` : `no valid manifest in ${this.root}`;
    } else if (snap.containers.size === 0 && !this.opts.allowEmpty) {
      complete = false;
      incompleteReason = `no valid manifest in ${this.root}`;
    }
    const out: FileSnapshot = {
      containers: snap.containers,
      protectedKeys: snap.protectedKeys,
      problems: snap.problems,
      complete,
      failingOrigins: snap.failingOrigins,
      files: results,
    };
    if (!complete && incompleteReason) out.incompleteReason = incompleteReason;
    return out;
  }

  // --- watching -------------------------------------------------------------------------------

  private async startWatcher(): Promise<void> {
    if (this.stopped) return;
    const root = this.root;
    const w = watch(root, {
      ignoreInitial: true,
      persistent: true,
      atomic: true,
      usePolling: this.opts.usePolling,
      interval: 100,
      ignored: (p: string, stats?: import('node:fs').Stats) => {
        if (isIgnoredPath(root, p)) return true;
        return !!stats?.isFile() && !isManifestPath(p);
      },
    });
    w.on('all', (event, p) => this.onFsEvent(event, p));
    w.on('error', (err) => this.opts.onError?.(err instanceof Error ? err : new Error(String(err))));
    this.watcher = w;
    await new Promise<void>((resolve) => {
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        resolve();
      };
      w.once('ready', finish);
      // A missing root may never be 'ready'-reported on some platforms; the re-list covers it.
      const t = setTimeout(finish, 2000);
      t.unref();
    });
  }

  private async restartWatcher(): Promise<void> {
    const w = this.watcher;
    this.watcher = undefined;
    if (w) await w.close();
    await this.startWatcher();
  }

  private onFsEvent(event: string, p: string): void {
    if (this.stopped) return;
    const abs = path.resolve(p);
    if (isIgnoredPath(this.root, abs)) return;
    if (event === 'addDir' || event === 'unlinkDir') {
      if (abs === this.root && event === 'addDir') return;
      this.pendingFull = true;
    } else if (event === 'add' || event === 'change' || event === 'unlink') {
      if (!isManifestPath(abs) && abs !== this.root) return;
      this.pending.add(abs);
    } else {
      return;
    }
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    const now = this.clock.now();
    this.firstPendingAt ??= now;
    if (this.debounceTimer) this.clock.clearTimeout(this.debounceTimer);
    // Trailing debounce, but never wait more than 10 quiet periods in a row under constant churn.
    const maxWait = this.opts.debounceMs * 10;
    const wait = Math.max(0, Math.min(this.opts.debounceMs, this.firstPendingAt + maxWait - now));
    this.debounceTimer = this.clock.setTimeout(() => {
      this.debounceTimer = undefined;
      this.firstPendingAt = undefined;
      void this.flush();
    }, wait);
  }

  /** Reads the files changed since the last flush. */
  private flush(): Promise<void> {
    if (this.pendingFull || this.pending.has(this.root)) {
      this.pendingFull = false;
      this.pending.clear();
      return this.relist();
    }
    const files = [...this.pending];
    this.pending.clear();
    if (files.length === 0) return Promise.resolve();
    return this.enqueue(async () => {
      if (this.stopped) return;
      const before = this.snapshotMeta();
      const changed = new Set<string>();
      for (const file of files) {
        const isFile = await fs.stat(file).then(
          (st) => st.isFile(),
          () => false,
        );
        if (!isFile) {
          if (this.files.has(file)) this.removeFile(file, changed);
          continue;
        }
        const r = await loadManifestFile(file, { nodeName: this.opts.nodeName, cache: this.manifestCache, capacity: this.opts.capacity });
        this.applyResult(r, changed);
      }
      this.cached = undefined;
      this.notify(changed, this.snapshotMeta() !== before);
    });
  }

  private scheduleRelist(): void {
    if (this.stopped || this.opts.relistMs <= 0) return;
    this.relistTimer = this.clock.setTimeout(() => {
      this.relistTimer = undefined;
      void this.relist()
        .catch(() => undefined) // reported through onError by enqueue()
        .finally(() => this.scheduleRelist());
    }, this.opts.relistMs);
  }
}

/** Keys of the containers a snapshot declares, for tests and logs. */
export function declaredKeys(containers: Iterable<DesiredContainer>): string[] {
  return [...containers].map((c) => c.key).sort();
}
