/**
 * One inotify watch (Node's fs.watch) per directory of a manifest tree, reporting each event as
 * the directory and the name inotify gave: nothing is read to report it.
 *
 * Why not chokidar, which this replaced: at every event in a directory chokidar reads the whole
 * directory again (readdir + an lstat of every entry) to find out what the name became, and holds
 * a watcher per file besides. With 2,500 manifests in one directory, one editor save cost ~150 ms
 * of `acetate run`'s event loop (plus the garbage), which delayed the very resize the save asked
 * for (issue 25: save → cgroup). Here the caller looks at the one name an event names.
 *
 * Symlinks are not followed and ignored names (dotfiles such as .git, editor files) are not
 * entered, as the lister (read-tree.ts) skips them; nesting stops at the lister's depth.
 */
import path from 'node:path';
import { watch as fsWatch, type FSWatcher, type Stats } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { isIgnoredName } from './ignore.js';
import { MAX_DEPTH } from './read-tree.js';

export interface DirWatchEvents {
  /** inotify said something about `name` in `dir` ('rename': created, deleted or moved; 'change': written); name null: unknown. */
  onEvent(dir: string, event: string, name: string | null): void;
  /** A directory's watch failed (it went away, or the kernel's watch limit was reached): re-list. */
  onLost(dir: string, err: Error): void;
}

interface Watch {
  watcher: FSWatcher;
  /** Which directory: a watch follows its inode, so a directory replaced under the same name is another one. */
  dev: number;
  ino: number;
}

export class DirWatches {
  private readonly watches = new Map<string, Watch>();
  /** Entries seen that are neither plain files nor directories (symlinks, FIFOs): their going re-lists the tree. */
  readonly specials = new Set<string>();
  /** The kernel refused a watch (ENOSPC: fs.inotify.max_user_watches): reported once, the walk stops. */
  private exhausted = false;
  private closed = false;

  constructor(private readonly events: DirWatchEvents) {}

  has(dir: string): boolean {
    return this.watches.has(dir);
  }

  /** True when `dir` is watched and is still the directory `st` describes (not one made since under its name). */
  isWatching(dir: string, st: Stats): boolean {
    const w = this.watches.get(dir);
    return w !== undefined && w.dev === st.dev && w.ino === st.ino;
  }

  get size(): number {
    return this.watches.size;
  }

  /** Watches `dir` and every directory below it (not through symlinks, not into ignored names). */
  async addTree(dir: string, depth = 0): Promise<void> {
    if (this.closed || this.exhausted || this.watches.has(dir) || depth > MAX_DEPTH) return;
    let st: Stats;
    let w: FSWatcher;
    try {
      st = await lstat(dir);
      if (!st.isDirectory() || this.closed || this.watches.has(dir)) return;
      w = fsWatch(dir, { persistent: true }, (event, name) => this.events.onEvent(dir, event, name === null ? null : String(name)));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return; // gone already: the caller re-lists
      // ENOSPC: no inotify watch left. Once: the rest of the tree would fail the same way.
      if (code === 'ENOSPC') this.exhausted = true;
      this.events.onLost(dir, err as Error);
      return;
    }
    w.on('error', (err) => {
      this.remove(dir);
      this.events.onLost(dir, err);
    });
    this.watches.set(dir, { watcher: w, dev: st.dev, ino: st.ino });
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return; // unreadable or gone: its watch reports what follows, the lister reports the problem
    }
    for (const e of entries) {
      if (isIgnoredName(e.name)) continue;
      const p = path.join(dir, e.name);
      if (e.isDirectory()) await this.addTree(p, depth + 1);
      else if (!e.isFile()) this.specials.add(p);
    }
  }

  /** Stops watching `dir` and everything below it. */
  remove(dir: string): void {
    const prefix = `${dir}${path.sep}`;
    for (const [d, w] of this.watches) {
      if (d !== dir && !d.startsWith(prefix)) continue;
      w.watcher.close();
      this.watches.delete(d);
    }
    for (const p of this.specials) if (p.startsWith(prefix)) this.specials.delete(p);
  }

  /** Depth of `dir` below `root` (for addTree of a directory that appeared). */
  static depthOf(root: string, dir: string): number {
    const rel = path.relative(root, dir);
    return rel ? rel.split(path.sep).length : 0;
  }

  close(): void {
    this.closed = true;
    for (const w of this.watches.values()) w.watcher.close();
    this.watches.clear();
    this.specials.clear();
  }
}
