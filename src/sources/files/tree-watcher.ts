/**
 * Watches a manifest tree (an inotify watch per directory: dir-watches.ts) and hands over debounced
 * batches of changed paths: the files touched within `debounceMs` of each other are read once, so
 * an editor's or git's atomic save (write a temporary file, rename it over the manifest) is one
 * change. A directory added or removed (or the root itself changing) asks for a full re-list instead.
 *
 * A manifest moved into place (an editor's atomic save: a temporary name vanishes and the
 * manifest changes in the very next event of its directory) is a complete file: it is read at
 * once, without the debounce (issue 25: the debounce was most of the 128 ms from save to cgroup).
 * Only a file already known qualifies (see onMove); in-place writes and new files wait out the
 * debounce as before, so a file being written is not read half-way.
 *
 * The root's own name is watched in its parent directory too: git-sync and many deploy tools
 * publish a new checkout by renaming a new symlink over `current`, which the watch on the old
 * target never sees (it was noticed only at the next re-list, 24 s on average with the 30 s default of the time).
 *
 * Symlinks are never followed: the root is resolved once (a `current` symlink is watched at its
 * target; the swap above restarts the watch) and the tree below is watched as it is on disk.
 * Following them let a link out of the tree (`up -> ..`) make the watcher walk and watch whatever it
 * points at, 40 levels deep until ELOOP: the node's whole / when a state dir with a running
 * container was below, and the paths it met printed in the log. A link made, changed or removed
 * inside the tree makes a full re-list at once; an edit of a file a link inside the tree points
 * to is seen under the file's own name (if it is in the tree) or at the periodic re-list.
 *
 * An event names one entry of one directory, and only that entry is looked at (one lstat): a save
 * costs the same in a directory of 2,500 manifests as in one of 5.
 */
import path from 'node:path';
import { existsSync, watch as fsWatch, type FSWatcher as NodeWatcher } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { isIgnoredPath, isManifestPath } from './ignore.js';
import { DirWatches } from './dir-watches.js';
import { realRoot } from './contained.js';
import type { Clock, TimerHandle } from '../../contracts/clock.js';

/** The names of a directory's last events kept to tell a move into place (onMove) from a creation. */
const RECENT_NAMES = 16;

/** Changed manifest files, or `full`: re-list the whole tree. */
export interface WatchBatch {
  full: boolean;
  files: string[];
}

export interface TreeWatcherOptions {
  root: string;
  clock: Clock;
  debounceMs: number;
  onBatch: (batch: WatchBatch) => void;
  onError?: (err: Error) => void;
  /** A manifest file already read: only such a file moved into place skips the debounce. */
  isKnown?: (file: string) => boolean;
}

export class TreeWatcher {
  private watcher?: DirWatches;
  /** The parent directory, for renames of the root's own name (a symlink swapped). */
  private parentWatcher?: NodeWatcher;
  private closed = false;
  private pending = new Set<string>();
  private pendingFull = false;
  private debounceTimer?: TimerHandle;
  private firstPendingAt?: number;
  /** The last raw event of each watched directory (what inotify said, in order). */
  private lastRaw = new Map<string, { event: string; name: string; before: string[] }>();
  /** The root as resolved when the watch started (the watches are of this tree, and report paths in it). */
  private resolvedRoot = '';

  constructor(private readonly opts: TreeWatcherOptions) {}

  get running(): boolean {
    return this.watcher !== undefined;
  }

  /** Starts watching; resolves when every directory of the tree is watched. */
  async start(): Promise<void> {
    if (this.closed) return;
    this.resolvedRoot = realRoot(this.opts.root);
    const w = new DirWatches({
      onEvent: (dir, event, name) => this.onDirEvent(w, dir, event, name),
      onLost: (dir, err) => {
        if (w !== this.watcher) return;
        this.opts.onError?.(new Error(`watch of ${this.asGivenRoot(dir)} lost: ${err.message}`, { cause: err }));
        this.pendingFull = true;
        this.scheduleFlush();
      },
    });
    this.watcher = w;
    this.watchRootName();
    // A missing root is watched from its parent (watchRootName): its return asks for a re-list and a restart.
    await w.addTree(this.resolvedRoot);
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
        this.checkRoot();
      });
      pw.on('error', () => undefined); // the parent went away: the periodic re-list still catches changes
      this.parentWatcher = pw;
    } catch {
      // No parent to watch (missing, not readable): the re-list catches a swap.
    }
  }

  /**
   * The root's name changed in its parent: when a directory is there again that is not the one
   * watched (removed and made again, or another renamed over it), the watch starts over on it.
   * A symlink swapped is the source's to see (its resolved root moved: it restarts the watch).
   */
  private checkRoot(): void {
    const w = this.watcher;
    if (!w) return;
    void lstat(this.resolvedRoot).then(
      (st) => {
        if (w !== this.watcher || this.closed || !st.isDirectory() || w.isWatching(this.resolvedRoot, st)) return;
        void this.restart().then(() => {
          this.pendingFull = true;
          this.scheduleFlush();
        });
      },
      () => undefined, // gone: the source sees the root missing, and restarts the watch when it is back
    );
  }

  private async stopWatcher(): Promise<void> {
    this.lastRaw.clear();
    this.parentWatcher?.close();
    this.parentWatcher = undefined;
    const w = this.watcher;
    this.watcher = undefined;
    w?.close();
  }

  /**
   * One inotify event: `name` in `dir` (under the resolved root). A manifest's name also goes to
   * the debounced batch as it is (added, written or removed: the source stats it when it reads).
   * Every name is looked at once (one lstat: a name that looks like a manifest may be a symlink or
   * a directory): a new directory is watched and the tree re-listed, a directory gone is forgotten
   * and the tree re-listed, a symlink or anything else that is not a plain file (or is gone unseen)
   * re-lists the tree; a plain file that is not a manifest is nothing.
   */
  private onDirEvent(w: DirWatches, dir: string, event: string, name: string | null): void {
    if (this.closed || w !== this.watcher) return;
    if (name === null || name === '') {
      // No name given. (An overflow of inotify's queue is not reported at all: libuv drops
      // IN_Q_OVERFLOW; the periodic re-list is what catches that.)
      this.pendingFull = true;
      this.scheduleFlush();
      return;
    }
    this.onMove(dir, event, name);
    const { root } = this.opts;
    const p = path.join(dir, name);
    const named = this.asGivenRoot(p);
    if (isIgnoredPath(root, named)) return;
    if (isManifestPath(named) && !w.has(p)) {
      this.pending.add(named);
      this.scheduleFlush();
    }
    void lstat(p).then(
      (st) => {
        if (w !== this.watcher) return;
        const wasSpecial = w.specials.delete(p);
        if (st.isDirectory()) {
          if (w.isWatching(p, st)) return; // the same directory: its own attributes changed
          // New, or another directory under a watched name (rm -rf d && mkdir d; mv next cur): the old
          // watch follows the old inode, so it goes. The tree is re-read once every new watch is in
          // place, so a file made in it before its watch existed is read too.
          w.remove(p);
          this.pendingFull = true;
          void w.addTree(p, DirWatches.depthOf(this.resolvedRoot, p)).finally(() => {
            this.pendingFull = true;
            this.scheduleFlush();
          });
        } else if (!st.isFile() || wasSpecial) {
          // A symlink (not followed: it may point at a directory) or a FIFO, or one that became a
          // plain file: the lister decides.
          if (!st.isFile()) w.specials.add(p);
          this.pendingFull = true;
          this.scheduleFlush();
        }
      },
      () => {
        if (w !== this.watcher) return;
        // Gone. A watched directory (its watches end), a symlink or FIFO, or this directory itself
        // re-list the tree; a plain file that was not a manifest is nothing (a manifest is pending).
        const dirGone = !existsSync(dir);
        const wasDir = w.has(p);
        const wasSpecial = w.specials.delete(p);
        if (wasDir) w.remove(p);
        if (dirGone) w.remove(dir);
        if (wasDir || wasSpecial || dirGone) {
          this.pendingFull = true;
          this.scheduleFlush();
        }
      },
    );
  }

  /**
   * inotify's events in order: a rename of one name directly followed, in the same directory, by a
   * rename of a known manifest, while the first name is gone and the manifest is there, and the
   * first name had events of its own before (it was made here while watched), is a move into
   * place (MOVED_FROM then MOVED_TO: fs.watch reports both, and creations and deletions, as
   * 'rename'). The manifest is read now; the same event also goes to the debounced batch, which reads it again and finds nothing
   * new. What does not match exactly (a new file, a write in place, a move from another
   * directory) waits out the debounce: the safe side.
   */
  private onMove(watched: string, event: string, name: string): void {
    const dir = this.asGivenRoot(watched);
    const prev = this.lastRaw.get(dir);
    const before = prev?.before ?? [];
    this.lastRaw.set(dir, { event, name, before: [...before.slice(1 - RECENT_NAMES), ...(prev ? [prev.name] : [])] });
    if (event !== 'rename' || prev?.event !== 'rename' || prev.name === name) return;
    // fs.watch says 'rename' for a creation and a deletion too: `rm a.yaml b.yaml; render > a.yaml`
    // looks the same. A temporary file was made (and written) while watched, in this directory,
    // before it vanished; a name deleted without any event of its own before does not qualify.
    if (!before.includes(prev.name)) return;
    const target = path.join(dir, name);
    const { root } = this.opts;
    if (isIgnoredPath(root, target) || !isManifestPath(target) || !this.opts.isKnown?.(target)) return;
    if (existsSync(path.join(dir, prev.name)) || !existsSync(target)) return;
    this.opts.onBatch({ full: false, files: [target] });
  }

  /** A path under the resolved root, named under the root as given, as the lister names it. */
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
