/**
 * While `acetate run` runs: what the node makes in its data places after a host-template container
 * started (a service's dir under /var/lib, an app under /opt, a dir at `/`) is hidden in every
 * host-template container within moments, not at its next start.
 *
 * Why so: the container's lower is the node's live `/`, and its markers (host-view.ts) are made
 * at its start. The places are watched with inotify (fs.watch: one watch per listed dir, the
 * few dozen host-listing.ts reads, and every dir of /etc and of the shown package dirs that
 * etc-walk.ts walks for owner-only entries: ≈200 here; one set per acetate process whatever the number of
 * containers; no CPU while nothing changes). A change there makes a new view (the listing is read
 * again: its dirs' mtimes changed) and its new markers are placed in every host-template
 * container's upper dir, as a start would (applyHostView: what the container wrote there is
 * kept). A new whiteout is seen by every later lookup and listing in the container.
 *
 * What remains (README, "The host template"): between the node's mkdir and the marker (a few ms
 * to a few hundred with thousands of containers) the name is listed; a root-owned entry is also
 * readable by the container's root then (a service user's is not: host-ids.ts). A tenant who
 * looked the name up in that moment may keep it: overlayfs caches the dentry it made; the unused
 * ones are dropped after markers are placed (drop_caches=2), one held open (a cwd, an fd) stays.
 * A container that filled its disk (`resources.disk`) gets its markers all the same: it is frozen
 * and the room acetate keeps on its disk is used (withRoom, disk/room-reserve.ts).
 * Without `acetate run` (only `apply`) nothing watches: a container sees such new entries until
 * its next start.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readJson } from '../../util/json-file.js';
import type { HostView } from './host-masks.js';
import { listedDirs } from './host-listing.js';
import { INSTANCES_DIR } from './instances.js';
import { forgetOwnerOnlyWalk, walkedDirs } from './etc-walk.js';
import { applyHostView } from './host-view.js';
import { TARGET_FILE, type TargetRecord } from './host-layer.js';
import { messageOf } from '../../contracts/errors.js';
import { isNoRoom } from '../disk/room-reserve.js';

/** Unused dentries and inodes (not the page cache): `echo 2 > /proc/sys/vm/drop_caches`. */
export function dropDentries(): Promise<void> {
  return writeFile('/proc/sys/vm/drop_caches', '2\n');
}

/** Containers updated at once after a change. */
const CONCURRENCY = 8;
/** A container whose markers could not all be placed (its disk full, a dir it swaps) is tried again after this. */
export const RETRY_MS = 5_000;

export interface HostViewWatchDeps {
  hostRoot: string;
  stateDir: string;
  /** <stateDir>/containers */
  containersDir: string;
  /** The instance's layers dir (host-layer.ts layersDirOf): the layers the containers started with. */
  layersDir: string;
  /** The node's current view (walls.ts hostViewOf). */
  view: () => Promise<HostView>;
  onError: (err: unknown) => void;
  /** Drops the kernel's unused dentries (default: /proc/sys/vm/drop_caches = 2). */
  dropDentries?: () => Promise<void>;
  /**
   * Runs `write` (placing markers in container `id`'s upper dir) with room on its disk: the
   * container frozen, the disk's reserve freed for it (disk/room-reserve.ts). None: a full disk
   * waits until the container frees space.
   */
  withRoom?: (id: string, upper: string, write: () => Promise<number>) => Promise<number>;
  /** A container (its dir's name) whose markers could not all be placed, and why; undefined once they are (its status). */
  onContainer?: (id: string, problem: string | undefined) => void;
  /** After each pass: how many containers and markers changed (logs, tests). */
  onApplied?: (containers: number, markers: number) => void;
}

/** What the container's status says of a failure: no node path (the names of what is hidden are the node's). */
function problemOf(err: unknown): string {
  return isNoRoom(err)
    ? "its disk is full and acetate's room on it is used up: grow resources.disk, or free space in it"
    : "a marker could not be placed (acetate run's log on the node says why)";
}

export class HostViewWatch {
  private readonly watchers = new Map<string, FSWatcher>();
  private running?: Promise<void>;
  private again = false;
  private closed = false;
  /** Containers whose last update failed (and why): tried again every RETRY_MS with the last view, alone. */
  private readonly failed = new Map<string, string>();
  private retryTimer?: NodeJS.Timeout;
  private last?: HostView;
  private lastKey?: string;

  constructor(private readonly d: HostViewWatchDeps) {}

  /**
   * Reads the view (the dirs to watch), watches them, and brings every container up to it (one
   * started by an earlier acetate may be behind): in the background, so the loop starts at once.
   */
  start(): void {
    this.changed();
  }

  close(): void {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }

  /** Resolves when no pass is running or queued (tests). */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }

  private changed(): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.pass()
      .catch((err: unknown) => this.d.onError(err))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.changed();
        }
      });
  }

  private async pass(): Promise<void> {
    let view = await this.d.view();
    // A dir made between that listing and its watch: read once more (a stat per dir when nothing changed).
    // (A new dir in /etc or a package's dir: walked again for its owner-only entries.)
    if (this.rewatch()) {
      forgetOwnerOnlyWalk(this.d.hostRoot);
      view = await this.d.view();
    }
    // A new view object with the same entries (a watched dir changed in a way that hides nothing
    // new: another instance registering, a file rewritten in /etc) needs no pass over every
    // container: at 2,500 containers one such pass per test instance kept `run` busy (284 ms/s).
    const key = JSON.stringify(view.entries);
    let ids: string[];
    if (view === this.last || key === this.lastKey) {
      if (!this.failed.size) return;
      ids = [...this.failed.keys()]; // the same view: only those that failed
    } else {
      // And those that failed (a removed one's failure ends here: its dir is gone).
      const listed = await readdir(this.d.containersDir).catch(() => [] as string[]);
      ids = [...new Set([...listed, ...this.failed.keys()])];
    }
    this.last = view;
    this.lastKey = key;
    let containers = 0;
    let markers = 0;
    for (let i = 0; i < ids.length; i += CONCURRENCY) {
      await Promise.all(
        ids.slice(i, i + CONCURRENCY).map(async (id) => {
          if (id.startsWith('.')) return;
          const containerDir = path.join(this.d.containersDir, id);
          const t = await readJson<TargetRecord>(path.join(containerDir, TARGET_FILE)).catch(() => undefined);
          if (!t || typeof t.upper !== 'string' || typeof t.idBase !== 'number') {
            this.recovered(id); // not a host-template container (or removed meanwhile)
            return;
          }
          // The layer it started with holds what it held then: what the node hid since goes in its upper dir.
          const apply = () =>
            applyHostView(
              view,
              { hostRoot: this.d.hostRoot, stateDir: this.d.stateDir, containerDir, upper: t.upper, idBase: t.idBase },
              { recheck: false, layersDir: this.d.layersDir },
            );
          let n: number;
          try {
            // Its disk full (the container can fill it): again with acetate's room on that disk,
            // the container frozen meanwhile (withRoom), so a tenant cannot keep node data shown.
            n = await apply().catch((err: unknown) => {
              if (!this.d.withRoom || !isNoRoom(err)) throw err;
              return this.d.withRoom(id, t.upper, apply);
            });
          } catch (err) {
            // A container removed meanwhile has no dir: nothing to hide in it.
            if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
              this.recovered(id);
              return;
            }
            // Logged when it starts failing and when the cause changes, not at every try.
            const message = messageOf(err);
            const before = this.failed.get(id);
            this.failed.set(id, message);
            if (before !== message)
              this.d.onError(new Error(`cannot update the host view of ${id} (tried again every ${RETRY_MS / 1000} s): ${message}`, { cause: err }));
            // The container's status says so, without the node paths (the names of what is hidden).
            this.d.onContainer?.(id, problemOf(err));
            return;
          }
          this.recovered(id);
          if (n) {
            containers++;
            markers += n;
          }
        }),
      );
    }
    // A container that looked a new name up before its marker came holds an overlayfs dentry
    // that still leads to the node's entry (the marker hides it from later listings and from
    // lookups not in the cache). The kernel's unused dentries are dropped so the next lookup
    // meets the marker: node-wide, but only when markers were placed (a node change in a data
    // place, rare), never at idle. One held open (a cwd, an fd) stays.
    if (markers) await (this.d.dropDentries ?? dropDentries)().catch((err: unknown) => this.d.onError(err));
    this.d.onApplied?.(containers, markers);
    if (this.failed.size && !this.retryTimer && !this.closed) {
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.changed();
      }, RETRY_MS);
      this.retryTimer.unref();
    }
  }

  /** A container whose markers are in place (or that has none to place): a failure it had ends. */
  private recovered(id: string): void {
    if (this.failed.delete(id)) this.d.onContainer?.(id, undefined);
  }

  /** Watches exactly the dirs of the last listing (a shown dir may have come or gone); true if one was added. */
  private rewatch(): boolean {
    if (this.closed) return false;
    let added = false;
    // The instances' registry too: a new acetate instance's dirs are hidden as the node's data is.
    // And every dir of /etc and of the shown package dirs (etc-walk.ts): a file made there owner-only
    // (or a chmod) is hidden at once, not at the next walk a minute later (≈200 watches here).
    const walked = new Set(walkedDirs(this.d.hostRoot));
    const want = new Set([...listedDirs(this.d.hostRoot), ...walked, INSTANCES_DIR]);
    for (const [dir, w] of this.watchers)
      if (!want.has(dir)) {
        w.close();
        this.watchers.delete(dir);
      }
    for (const dir of want) {
      if (this.watchers.has(dir)) continue;
      try {
        const w = watch(path.join(this.d.hostRoot, dir), { persistent: false }, () => {
          if (walked.has(dir)) forgetOwnerOnlyWalk(this.d.hostRoot);
          this.changed();
        });
        w.on('error', () => {
          w.close();
          this.watchers.delete(dir);
          this.changed();
        });
        this.watchers.set(dir, w);
        added = true;
      } catch {
        // Absent on this node: its parent is watched, and its making is a change there.
      }
    }
    return added;
  }
}
