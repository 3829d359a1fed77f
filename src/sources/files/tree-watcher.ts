/**
 * Watches a manifest tree with chokidar and hands over debounced batches of changed paths: the
 * files touched within `debounceMs` of each other are read once, so an editor's or git's atomic
 * save (write a temporary file, rename it over the manifest) is one change. A directory added or
 * removed (or the root itself changing) asks for a full re-list instead.
 *
 * A manifest moved into place (an editor's atomic save: a temporary name vanishes and the
 * manifest changes in the very next event of its directory) is a complete file: it is read at
 * once, without the debounce (issue 25: the debounce was most of the 128 ms from save to cgroup).
 * Only a file already known qualifies (see onRaw); in-place writes and new files wait out the
 * debounce as before, so a file being written is not read half-way.
 *
 * The root's own name is watched in its parent directory too: git-sync and many deploy tools
 * publish a new checkout by renaming a new symlink over `current`, which the watch on the old
 * target never sees (it was noticed only at the next re-list, 24 s on average with the 30 s default of the time).
 *
 * Symlinks are never followed: the root is resolved once (a `current` symlink is watched at its
 * target; the swap above restarts the watch) and the tree below is watched as it is on disk.
 * Following them let a link out of the tree (`up -> ..`) make chokidar walk and watch whatever it
 * points at, 40 levels deep until ELOOP: the node's whole / when a state dir with a running
 * container was below, and the paths it met printed in the log. A link made, changed or removed
 * inside the tree makes a full re-list at once; an edit of a file a link inside the tree points
 * to is seen under the file's own name (if it is in the tree) or at the periodic re-list.
 */
import path from 'node:path';
import { existsSync, watch as fsWatch, type FSWatcher as NodeWatcher, type Stats } from 'node:fs';
import { watch, type FSWatcher } from 'chokidar';
import { isIgnoredPath, isManifestPath } from './ignore.js';
import { realRoot } from './contained.js';
import type { Clock, TimerHandle } from '../../contracts/clock.js';

/** Changed manifest files, or `full`: re-list the whole tree. */
export interface WatchBatch {
  full: boolean;
  files: string[];
}

export interface TreeWatcherOptions {
  root: string;
  clock: Clock;
  debounceMs: number;
  usePolling: boolean;
  onBatch: (batch: WatchBatch) => void;
  onError?: (err: Error) => void;
  /** A manifest file already read: only such a file moved into place skips the debounce. */
  isKnown?: (file: string) => boolean;
}

export class TreeWatcher {
  private watcher?: FSWatcher;
  /** The parent directory, for renames of the root's own name (a symlink swapped). */
  private parentWatcher?: NodeWatcher;
  private closed = false;
  private pending = new Set<string>();
  private pendingFull = false;
  private debounceTimer?: TimerHandle;
  private firstPendingAt?: number;
  /** The last raw event of each watched directory (what inotify said, in order). */
  private lastRaw = new Map<string, { event: string; name: string }>();
  /** The root as resolved when the watch started (chokidar is given this, and reports paths in it). */
  private resolvedRoot = '';

  constructor(private readonly opts: TreeWatcherOptions) {}

  get running(): boolean {
    return this.watcher !== undefined;
  }

  /** Starts watching; resolves when chokidar is ready (or after 2 s: a missing root may never be). */
  async start(): Promise<void> {
    if (this.closed) return;
    const { root } = this.opts;
    this.resolvedRoot = realRoot(root);
    const w = watch(this.resolvedRoot, {
      ignoreInitial: true,
      followSymlinks: false,
      persistent: true,
      atomic: true,
      usePolling: this.opts.usePolling,
      interval: 100,
      ignored: (p: string, stats?: Stats) => {
        const named = this.asGivenRoot(p);
        if (isIgnoredPath(root, named)) return true;
        return !!stats?.isFile() && !isManifestPath(named);
      },
    });
    w.on('all', (event, p) => this.onFsEvent(event, p));
    w.on('raw', (event: string, name: unknown, details: unknown) => this.onRaw(event, name, details));
    this.watchRootName();
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

  /** Starts over (the root came back: the old watcher may have lost it). */
  async restart(): Promise<void> {
    await this.stopWatcher();
    await this.start();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.debounceTimer) this.opts.clock.clearTimeout(this.debounceTimer);
    this.debounceTimer = undefined;
    await this.stopWatcher();
  }

  private watchRootName(): void {
    const { root } = this.opts;
    if (this.parentWatcher || path.dirname(root) === root) return;
    const name = path.basename(root);
    try {
      const pw = fsWatch(path.dirname(root), { persistent: false }, (_event, filename) => {
        if (filename !== null && String(filename) !== name) return;
        if (this.closed) return;
        this.pendingFull = true;
        this.scheduleFlush();
      });
      pw.on('error', () => undefined); // the parent went away: the periodic re-list still catches changes
      this.parentWatcher = pw;
    } catch {
      // No parent to watch (missing, not readable): the re-list catches a swap.
    }
  }

  private async stopWatcher(): Promise<void> {
    this.lastRaw.clear();
    this.parentWatcher?.close();
    this.parentWatcher = undefined;
    const w = this.watcher;
    this.watcher = undefined;
    if (w) await w.close();
  }

  private onFsEvent(event: string, p: string): void {
    if (this.closed) return;
    const { root } = this.opts;
    const abs = this.asGivenRoot(path.resolve(p));
    if (isIgnoredPath(root, abs)) return;
    if (event === 'addDir' || event === 'unlinkDir') {
      if (abs === root && event === 'addDir') return;
      this.pendingFull = true;
    } else if (event === 'add' || event === 'change' || event === 'unlink') {
      // Another name that is not ignored: a symlink (links are not followed, so a link to a dir
      // or a link swapped in the tree is only this event): the lister reads the tree again.
      if (!isManifestPath(abs) && abs !== root) this.pendingFull = true;
      else this.pending.add(abs);
    } else {
      return;
    }
    this.scheduleFlush();
  }

  /**
   * fs.watch's events, before chokidar's own handling: a rename of one name directly followed, in
   * the same directory, by a rename of a known manifest, while the first name is gone and the
   * manifest is there, is a move into place (inotify's MOVED_FROM then MOVED_TO: fs.watch reports
   * both as 'rename'). The manifest is read now; chokidar's own 'change' for it follows and is
   * read again after the debounce, finding nothing new. What does not match exactly (a new file,
   * a write in place, a move from another directory) waits out the debounce: the safe side.
   */
  private onRaw(event: string, name: unknown, details: unknown): void {
    const watched = (details as { watchedPath?: unknown } | undefined)?.watchedPath;
    if (this.closed || typeof watched !== 'string' || typeof name !== 'string' || !name) return;
    const dir = this.asGivenRoot(path.resolve(watched));
    // chokidar also watches each file; its events name the file itself: only directories' count.
    if (path.basename(dir) === name) return;
    const prev = this.lastRaw.get(dir);
    this.lastRaw.set(dir, { event, name });
    if (event !== 'rename' || prev?.event !== 'rename' || prev.name === name) return;
    const target = path.join(dir, name);
    const { root } = this.opts;
    if (isIgnoredPath(root, target) || !isManifestPath(target) || !this.opts.isKnown?.(target)) return;
    if (existsSync(path.join(dir, prev.name)) || !existsSync(target)) return;
    this.opts.onBatch({ full: false, files: [target] });
  }

  /** A path chokidar reported (under the resolved root), named under the root as given, as the lister names it. */
  private asGivenRoot(p: string): string {
    const { root } = this.opts;
    if (!this.resolvedRoot || this.resolvedRoot === root) return p;
    const rel = path.relative(this.resolvedRoot, p);
    return rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel) ? p : path.join(root, rel);
  }

  private scheduleFlush(): void {
    const { clock, debounceMs } = this.opts;
    const now = clock.now();
    this.firstPendingAt ??= now;
    if (this.debounceTimer) clock.clearTimeout(this.debounceTimer);
    // Trailing debounce, but never wait more than 10 quiet periods in a row under constant churn.
    const maxWait = debounceMs * 10;
    const wait = Math.max(0, Math.min(debounceMs, this.firstPendingAt + maxWait - now));
    this.debounceTimer = clock.setTimeout(() => {
      this.debounceTimer = undefined;
      this.firstPendingAt = undefined;
      this.flush();
    }, wait);
  }

  private flush(): void {
    const full = this.pendingFull || this.pending.has(this.opts.root);
    const files = full ? [] : [...this.pending];
    this.pendingFull = false;
    this.pending.clear();
    if (full || files.length > 0) this.opts.onBatch({ full, files });
  }
}
