/**
 * The images lock, `<stateDir>/images/acetate-images.lock`: a flock(2) (see util/flock.ts) that
 * keeps `acetate image rm|prune` from deleting what a user of the store is about to use.
 *
 * - shared, by each user of the store: a pull or import until its record and names are written
 *   (its blobs and layers are garbage to a prune until then), and a container create from an
 *   image from before it resolves the image's layers until its applied record naming the image
 *   is in place (from then on `runtime.list()` shows it as a user of the image);
 * - exclusive, by `image rm` and `image prune`: which images and layers are unused is decided and
 *   they are deleted under it. They wait (bounded) for the users in flight instead of failing.
 *
 * Not the node lock: that one is held by `acetate run` for as long as it lives, so `image prune`
 * taking it would be refused for ever. This one a prune gets between two users.
 *
 * Cost. Users that overlap in one process (the workers of `run`, a create and the pull it starts)
 * share one hold, counted here: the first takes it (one `flock` spawn, 2–5 ms), the last one out
 * closes the file, which releases it. The process that holds the node lock (`run`, `apply`) makes
 * a create after create, so it keeps its hold between users (keepBetweenUsers) and spawns nothing
 * per create; a prune that finds the lock taken says so in a "want" file
 * (`acetate-images.want-<pid>-<start time>`, looked at on each user's entry and exit and every
 * 250 ms while the hold is idle), and the holder lets go at the first moment no user is in flight,
 * new users waiting meanwhile. That also gives a waiting prune the turn that flock(2), which
 * prefers no writer, would not: without it a stream of overlapping creates could hold it off for
 * ever. For the same reason a process with no hold does not take a new one while a prune wants the
 * lock (flock(2) would let the new shared lock in ahead of the waiting exclusive one, beside the
 * other processes' users): it waits for the want file to go, up to sharedWaitMs.
 * A long pull still holds it off, up to the prune's bound: it then gives up, having removed
 * nothing, and the users held back for it go on.
 *
 * A want file counts only while its process lives: the pid with the start time (field 22 of
 * /proc/PID/stat) in its name, since a pid alone may be reused by a process that wants nothing
 * (which would make every holder let go for ever). The prune removes it when it gets the lock or
 * gives up, and on SIGINT, SIGTERM or SIGHUP; one a SIGKILL left is removed by the next prune.
 *
 * Nesting: an exclusive section may use the store (shared inside it runs at once, the process
 * holds more than that); asking for it exclusive while holding it shared would wait for
 * ourselves, and is refused.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { closeSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { flockFd, openLockFile } from '../util/flock.js';
import { liveStartTimeNow, selfIdentity } from '../util/processes.js';
import { withSignalCleanup } from '../util/signal-cleanup.js';
import { ImageStoreError } from './errors.js';

export const IMAGES_LOCK_FILE = 'acetate-images.lock';
const WANT_PREFIX = 'acetate-images.want-';
/** `<pid>-<start time>`: see wantLive. */
const WANT_NAME = /^acetate-images\.want-(\d+)-(\d+)$/;
const IDLE_CHECK_MS = 250;

/** Whether a want file's process is the live process that wrote it (an earlier format, `want-<pid>`, is not). */
function wantLive(name: string): boolean {
  const m = WANT_NAME.exec(name);
  return m !== null && liveStartTimeNow(Number(m[1])) === Number(m[2]);
}

export interface ImagesLockOptions {
  /** How long a user waits for an `image rm|prune` in progress (default 120 s). */
  sharedWaitMs?: number;
  /** How long `image rm|prune` waits for the users in flight (default 60 s). */
  exclusiveWaitMs?: number;
  /** Called when a user starts to wait for an `image rm|prune` (once per wait, not per user). */
  onSharedWait?: (file: string) => void;
  flockPath?: string;
  /** The clock of the bounded wait for a want file to go (default Date.now). */
  now?: () => number;
}

/** The images lock stayed held by others for as long as we could wait. */
export class ImagesLockTimeoutError extends ImageStoreError {
  constructor(
    readonly file: string,
    readonly mode: 'shared' | 'exclusive',
    waitedMs: number,
  ) {
    const s = Math.round(waitedMs / 1000);
    super(
      mode === 'exclusive'
        ? `image users (containers being created from images, pulls, imports) held ${file} for ${s} s: nothing was removed; try again when they are done`
        : `\`acetate image rm|prune\` held ${file} for ${s} s`,
    );
    this.name = 'ImagesLockTimeoutError';
  }
}

interface SharedHold {
  users: number;
  /** The open lock file, once the lock is ours. */
  fd: Promise<number>;
  /** The same, once resolved: closed at once when let go. */
  acquired?: number;
  /** A user waits for it to be let go (a prune wants the lock): its last user lets go. */
  draining: boolean;
  released: Promise<void>;
  release(): void;
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

export class ImagesLock {
  readonly file: string;
  private readonly dir: string;
  private hold: SharedHold | undefined;
  /** Users with no hold wait for a prune's want file to go (one wait, shared). */
  private yielding: Promise<void> | undefined;
  private keep = false;
  private idleTimer: NodeJS.Timeout | undefined;
  /** Which mode the current async call chain holds, for nesting. */
  private readonly held = new AsyncLocalStorage<'shared' | 'exclusive'>();

  constructor(
    imagesDir: string,
    private readonly opts: ImagesLockOptions = {},
  ) {
    this.dir = imagesDir;
    this.file = path.join(imagesDir, IMAGES_LOCK_FILE);
  }

  /** Keep the shared hold between users, until an `image rm|prune` wants the lock (see above). */
  keepBetweenUsers(): void {
    this.keep = true;
  }

  /** Stop keeping it: an idle hold is let go now, one in use when its last user leaves. */
  stopKeeping(): void {
    this.keep = false;
    if (this.hold?.acquired !== undefined && this.hold.users === 0) this.letGo(this.hold);
  }

  /** Runs fn as a user of the store: no `image rm|prune` runs meanwhile. */
  async shared<T>(fn: () => Promise<T>): Promise<T> {
    if (this.held.getStore()) return fn();
    const hold = await this.join();
    try {
      return await this.held.run('shared', fn);
    } finally {
      this.leave(hold);
    }
  }

  /** Runs fn alone on the store (`image rm|prune`), after the users in flight are done. */
  async exclusive<T>(fn: () => Promise<T>, opts: { onWait?: (file: string) => void } = {}): Promise<T> {
    const mine = this.held.getStore();
    if (mine === 'exclusive') return fn();
    if (mine === 'shared') throw new ImageStoreError(`${this.file}: asked exclusive while this call holds it shared (it would wait for itself)`);
    if (this.hold?.acquired !== undefined && this.hold.users === 0) this.letGo(this.hold); // ours, kept idle
    const fd = await this.take('exclusive', this.opts.exclusiveWaitMs ?? 60_000, opts.onWait);
    try {
      return await this.held.run('exclusive', fn);
    } finally {
      closeSync(fd);
    }
  }

  private async join(): Promise<SharedHold> {
    // A wait for a prune is told once (onSharedWait), by the first user held back in it.
    let told = false;
    const tell = (first: boolean): void => {
      if (first && !told) this.opts.onSharedWait?.(this.file);
      told = true;
    };
    let yielded = false;
    for (;;) {
      const cur = this.hold;
      if (cur?.acquired !== undefined && this.wanted()) {
        // A prune waits: it goes first, then this user takes the lock again. Should the prune
        // give up (its bound) or die first, this user joins the hold after all.
        tell(!cur.draining);
        if (cur.users === 0) this.letGo(cur);
        cur.draining = true;
        while (this.hold === cur && this.wanted()) await Promise.race([cur.released, delay(IDLE_CHECK_MS)]);
        cur.draining = this.hold !== cur;
        continue;
      }
      if (!cur && !yielded && this.wanted()) {
        // No hold here and a prune waits (for other processes' users, or for the hold just let
        // go): flock(2) would grant a new shared lock at once, ahead of it. Wait for it first.
        yielded = true;
        tell(!this.yielding);
        this.yielding ??= this.waitUnwanted().finally(() => (this.yielding = undefined));
        await this.yielding;
        continue;
      }
      const hold = cur ?? this.newHold(told ? undefined : this.opts.onSharedWait);
      hold.users++;
      try {
        await hold.fd;
        return hold;
      } catch (err) {
        hold.users--;
        throw err;
      }
    }
  }

  /** Until no live want file is left (the prune got the lock, gave up or died), or sharedWaitMs. */
  private async waitUnwanted(): Promise<void> {
    const now = this.opts.now ?? Date.now;
    const until = now() + (this.opts.sharedWaitMs ?? 120_000);
    while (now() < until && this.wanted()) await delay(IDLE_CHECK_MS);
  }

  private leave(hold: SharedHold): void {
    if (--hold.users > 0) return;
    if (this.keep && !hold.draining && this.hold === hold && !this.wanted()) {
      this.idleTimer ??= setInterval(() => {
        if (this.hold?.acquired !== undefined && this.hold.users === 0 && this.wanted()) this.letGo(this.hold);
      }, IDLE_CHECK_MS).unref();
      return;
    }
    this.letGo(hold);
  }

  private letGo(hold: SharedHold): void {
    if (this.hold === hold) this.hold = undefined;
    if (this.idleTimer && !this.hold) {
      clearInterval(this.idleTimer);
      this.idleTimer = undefined;
    }
    hold.release();
  }

  private newHold(onWait: ((file: string) => void) | undefined): SharedHold {
    let resolve!: () => void;
    const released = new Promise<void>((r) => (resolve = r));
    const fd = this.take('shared', this.opts.sharedWaitMs ?? 120_000, onWait);
    const hold: SharedHold = { users: 0, fd, draining: false, released, release: () => undefined };
    // Only an acquired hold is let go (by its last user, or idle), and only once.
    hold.release = () => {
      if (hold.acquired !== undefined) closeSync(hold.acquired);
      hold.acquired = undefined;
      resolve();
    };
    this.hold = hold;
    fd.then(
      (n) => (hold.acquired = n),
      // A failed take is not joined by later users: they try again.
      () => this.hold === hold && (this.hold = undefined),
    );
    return hold;
  }

  /** An `image rm|prune` of a live process waits for the lock (its want file). */
  private wanted(): boolean {
    try {
      return readdirSync(this.dir).some((n) => n.startsWith(WANT_PREFIX) && wantLive(n));
    } catch {
      return false;
    }
  }

  /** The lock in `mode`: at once if free (one spawn), else after onWait and a wait of up to waitMs. */
  private async take(mode: 'shared' | 'exclusive', waitMs: number, onWait?: (file: string) => void): Promise<number> {
    // Only users and removers get here: read-only commands never make the dir or the file.
    const fd = openLockFile(this.file);
    const flockPath = this.opts.flockPath;
    try {
      if (await flockFd(fd, { mode, wait: false, flockPath })) return fd;
      // onWait once the want file is there: from then on the users of this process let the prune go first.
      const waiting = (): Promise<boolean> => {
        onWait?.(this.file);
        return flockFd(fd, { mode, wait: waitMs, flockPath });
      };
      if (await (mode === 'exclusive' ? this.wantWhile(waiting) : waiting())) return fd;
      throw new ImagesLockTimeoutError(this.file, mode, waitMs);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  /** Runs wait with our want file in place (removed after, however it ends), and those of killed prunes removed. */
  private async wantWhile<T>(wait: () => Promise<T>): Promise<T> {
    const self = await selfIdentity();
    const want = path.join(this.dir, `${WANT_PREFIX}${process.pid}-${self?.startTicks}`);
    for (const n of readdirSync(this.dir)) {
      if (n.startsWith(WANT_PREFIX) && !wantLive(n)) rmSync(path.join(this.dir, n), { force: true });
    }
    const remove = (): void => rmSync(want, { force: true });
    try {
      writeFileSync(want, '');
      return await withSignalCleanup(remove, wait);
    } finally {
      remove();
    }
  }
}
