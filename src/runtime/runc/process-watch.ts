/**
 * Event-driven process watch for `acetate run` (issue 25): the loop is told which container may
 * have changed, instead of relisting every container every 2 s (which cost the loop ~0.5 ms of CPU
 * per container per pass: 118 ms/s at 1,000 containers with nothing changing).
 *
 * - Exits: conmon writes the init's exit code to `<run>/exits/<id>` when it ends (an OOM kill
 *   included). Each tracked container's exit dir is watched with inotify (fs.watch): the write is
 *   an event, seen in milliseconds. One inotify watch per container; the kernel's default
 *   fs.inotify.max_user_watches (≥ 8,192, far more on a machine with memory) is well above 2,500.
 * - A lost supervisor (conmon killed) writes nothing, but it closes its fds: each running
 *   container's `winsz` FIFO (which conmon holds open for reading and writing until it ends, and
 *   which acetate never writes: it allocates no terminal) is opened for reading, and the end of
 *   file the kernel gives once no writer is left is an event (conmon-lifeline.ts). One fd each.
 *   sweep(), called on the loop's poll period, signals 0 only to the conmons without one (no FIFO,
 *   or past the fd budget): every 2 s it cost ~3-8 µs per container, most of the idle loop's CPU
 *   (1.2 ms/s at 300 containers, so ~10 ms/s at 2,500, the whole target).
 * - A container left running without its conmon (unsupervised) has no exit file to come: its
 *   process is signalled 0 by sweep() instead, so its end gets it restarted within a poll period,
 *   not at the next resync (minutes). Such containers are few; a signal each costs microseconds.
 * - Anything else (runc's state removed by hand, a pid reused before the sweep saw it die) is
 *   found by the loop's resync, which re-reads every container.
 *
 * Every event only enqueues the key: the reconcile re-reads the container (level-triggered), so a
 * spurious event (acetate's own removal of the old exit file at a restart) costs one no-op pass.
 */
import { existsSync, statSync, watch, type FSWatcher } from 'node:fs';
import type { ProcessWatch } from '../runtime.js';
import type { ContainerPaths } from './paths.js';
import { liveStartTimeNow, pidExists } from '../../util/processes.js';
import { readSmallFileNow } from '../../util/small-file.js';
import { openLifeline, type Lifeline, LifelineBudget } from './conmon-lifeline.js';

interface Tracked {
  /** The exit dir's watch, and the dir's inode: a dir removed and made again is watched again. */
  watcher?: FSWatcher;
  ino?: number;
  /** While running: its conmon's pid, which the sweep checks alive (unless a lifeline tells). */
  conmon?: number;
  /** Its conmon's FIFO, open for reading: its end of file is conmon's end. */
  lifeline?: Lifeline;
  /** Running without its conmon: the container's own process, which the sweep checks alive. */
  orphan?: { pid: number; start: number };
  /** The pid of an unsupervised run whose end was reported (watchUnsupervised): not again. */
  endSeen?: number;
}

/** Alive and not a zombie (one /proc read). */
const isLive = (pid: number): boolean => liveStartTimeNow(pid) !== undefined;

function pidIn(file: string): number | undefined {
  try {
    const n = Number(readSmallFileNow(file).trim());
    return Number.isSafeInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

export class ExitWatch implements ProcessWatch {
  private readonly tracked = new Map<string, Tracked>();
  /** Running keys whose conmon has no lifeline: the only ones the sweep looks at. */
  private readonly swept = new Set<string>();
  /** Running keys whose conmon is gone (Tracked.orphan): their processes are swept. */
  private readonly orphans = new Set<string>();
  private closed = false;

  constructor(
    /** The container's paths, undefined for a key that names no container acetate could have. */
    private readonly pathsOf: (key: string) => ContainerPaths | undefined,
    private readonly onChange: (key: string) => void,
    /** How many conmons may be watched through their FIFO (default: a quarter of RLIMIT_NOFILE). */
    private readonly budget = new LifelineBudget(),
  ) {}

  /** Keys with a watched exit dir (for tests and metrics). */
  get size(): number {
    return this.tracked.size;
  }

  /** Keys whose conmon is watched through its FIFO rather than swept (for tests and metrics). */
  get lifelines(): number {
    let n = 0;
    for (const t of this.tracked.values()) if (t.lifeline) n++;
    return n;
  }

  track(key: string): void {
    if (this.closed) return;
    const cp = this.pathsOf(key);
    let ino: number | undefined;
    try {
      ino = cp ? statSync(cp.exitDir).ino : undefined;
    } catch {
      ino = undefined;
    }
    if (!cp || ino === undefined) {
      // Never started, or removed: nothing to watch until a start makes the dir.
      this.untrack(key);
      return;
    }
    let t = this.tracked.get(key);
    if (!t) this.tracked.set(key, (t = {}));
    let added = false;
    if (!t.watcher || t.ino !== ino) {
      t.watcher?.close();
      t.watcher = this.watchDir(key, cp.exitDir);
      t.ino = ino;
      added = t.watcher !== undefined;
    }
    // The same run as at the last look (its conmon alive, no exit yet): nothing to read again.
    if (added || t.conmon === undefined || !isLive(t.conmon) || existsSync(cp.exitFile)) t.conmon = this.runningConmon(cp);
    this.holdLifeline(key, t, cp);
    if (t.conmon !== undefined && !t.lifeline) this.swept.add(key);
    else this.swept.delete(key);
    this.watchUnsupervised(key, t, cp);
    // An exit between the reconcile's look and this watch wrote its file unseen: look again.
    if (added && existsSync(cp.exitFile)) this.onChange(key);
  }

  /**
   * Keys whose running container's conmon is gone since they were tracked, and keys of
   * unsupervised containers whose process has ended; each reported once. Only conmon is looked at
   * while it lives: the init's end is then an exit file (an event). ~3 µs of CPU per container.
   */
  sweep(): string[] {
    const gone: string[] = [];
    for (const key of this.orphans) {
      const t = this.tracked.get(key);
      // The same process (its start time: not a reused pid), not a zombie.
      if (t?.orphan !== undefined && liveStartTimeNow(t.orphan.pid) === t.orphan.start) continue;
      this.orphans.delete(key);
      if (t?.orphan === undefined) continue;
      t.endSeen = t.orphan.pid;
      t.orphan = undefined;
      gone.push(key);
    }
    for (const key of this.swept) {
      const t = this.tracked.get(key);
      if (t?.conmon !== undefined && !t.lifeline && pidExists(t.conmon)) continue;
      this.swept.delete(key);
      if (t?.conmon === undefined || t.lifeline) continue;
      t.conmon = undefined;
      gone.push(key);
    }
    return gone;
  }

  close(): void {
    this.closed = true;
    for (const key of [...this.tracked.keys()]) this.untrack(key);
  }

  private untrack(key: string): void {
    const t = this.tracked.get(key);
    t?.watcher?.close();
    if (t) this.dropLifeline(t);
    this.tracked.delete(key);
    this.swept.delete(key);
    this.orphans.delete(key);
  }

  /** A lifeline to the conmon the container runs under now; none when it runs under none. */
  private holdLifeline(key: string, t: Tracked, cp: ContainerPaths): void {
    if (t.lifeline && t.lifeline.conmon === t.conmon) return;
    this.dropLifeline(t);
    if (t.conmon === undefined) return;
    const conmon = t.conmon;
    t.lifeline = openLifeline(`${cp.bundle}/winsz`, conmon, this.budget, () => {
      if (t.lifeline?.conmon !== conmon) return;
      this.dropLifeline(t);
      // Gone (the end of a run after its exit file, or killed): the reconcile reads which.
      if (t.conmon === conmon) t.conmon = undefined;
      if (!this.closed) this.onChange(key);
    });
  }

  private dropLifeline(t: Tracked): void {
    t.lifeline?.close();
    t.lifeline = undefined;
  }

  private watchDir(key: string, dir: string): FSWatcher | undefined {
    let w: FSWatcher;
    try {
      // Not persistent: the watches never keep the process alive on their own.
      w = watch(dir, { persistent: false }, () => this.onChange(key));
    } catch {
      return undefined; // e.g. out of inotify watches: the resync still sees the exit
    }
    w.on('error', () => {
      w.close();
      const t = this.tracked.get(key);
      if (t?.watcher === w) t.watcher = undefined;
      this.onChange(key);
    });
    return w;
  }

  /**
   * A container without its conmon and without an exit file: while its process lives, the sweep
   * signals it; one that ended before this look (between the reconcile's read and now) is
   * reported at once, once per pid (its reconcile tracks it again and must not be told again).
   */
  private watchUnsupervised(key: string, t: Tracked, cp: ContainerPaths): void {
    t.orphan = undefined;
    this.orphans.delete(key);
    if (t.conmon !== undefined || existsSync(cp.exitFile)) return;
    const pid = pidIn(cp.pidFile);
    if (pid === undefined) return;
    const start = liveStartTimeNow(pid);
    if (start !== undefined) {
      t.orphan = { pid, start };
      this.orphans.add(key);
    } else if (t.endSeen !== pid) {
      t.endSeen = pid;
      this.onChange(key);
    }
  }

  /** The conmon pid when the container runs under it now (no exit file yet, both alive). */
  private runningConmon(cp: ContainerPaths): number | undefined {
    if (existsSync(cp.exitFile)) return undefined;
    const pid = pidIn(cp.pidFile);
    const conmon = pidIn(cp.conmonPidFile);
    // A conmon just killed is a zombie until its new parent reaps it: gone already (its FIFO ended).
    return pid !== undefined && conmon !== undefined && pidExists(pid) && isLive(conmon) ? conmon : undefined;
  }
}
