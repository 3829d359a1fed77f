/**
 * The locks of id allocation, held by this process for a burst of allocations instead of once per
 * allocation: the records' (<records file>.lock, id-records.ts) and, inside it, the node's (the
 * default records' lock, id-claims.ts; one lock when the records are the default). Always taken
 * in that order.
 *
 * Why: the lock is a flock(2) (util/flock.ts: the kernel drops it when the holder dies, so no stale
 * lock to take over), taken through util-linux's `flock` process, and Node's spawn blocks the main
 * thread until the child has exec'd (95–150 ms under load, bench/results/userns-profile.md). An
 * apply of many containers allocates every few hundred ms: taking the lock once and keeping it
 * while allocations keep coming (LINGER_MS after the last one) costs one process per burst, and in a
 * long burst one per MAX_HOLD_MS (it is let go and taken again), not one per container. Another acetate process of the node waits at most that long after our last
 * allocation, and never longer than about MAX_HOLD_MS + LINGER_MS during a long apply (a burst
 * holding it longer lets go after its next allocation: an instance once waited a whole
 * 2,500-container apply for its first range). The fd is closed (the lock released) by the timer, which does not keep the process
 * alive, or by the process's exit.
 *
 * Callers are serialized in this process by a mutex per lock file (concurrent creates of the loop),
 * so what a holder reads of the records under the lock stays true until it releases it.
 */
import { closeSync } from 'node:fs';
import { flockFd, openLockFile } from '../../util/flock.js';
import { KeyedMutex } from '../../util/keyed-mutex.js';

/** How long the lock is kept after the last allocation of a burst. */
export const LINGER_MS = 2_000;

/**
 * The longest one burst keeps the lock: an apply of thousands allocates every few hundred ms for
 * many minutes, and another instance (or a test's runtime) must not wait for all of it. Past this,
 * the lock is let go after the allocation that ran over, and taken again by the next.
 */
export const MAX_HOLD_MS = 1_000;

interface Held {
  fd: number;
  /** This acquisition's number (holdOf): what was read under the lock stays true while it is the same. */
  hold: number;
  /** When this process took the lock (Date.now()). */
  since: number;
  timer?: NodeJS.Timeout;
  /** Run (synchronously) while the lock is still ours, just before it is let go. */
  beforeRelease?: () => void;
}

const inProcess = new KeyedMutex();
const held = new Map<string, Held>();
let flockSpawns = 0;
let holds = 0;
let exitHooked = false;

/** How many `flock` processes this process has started for id records (the benchmark's count). */
export function idLockSpawns(): number {
  return flockSpawns;
}

/** Runs `fn` holding the lock of `lockFile` (in this process and on the node). */
export function withIdRecordsLock<T>(lockFile: string, fn: () => Promise<T>, opts: { lingerMs?: number; beforeRelease?: () => void } = {}): Promise<T> {
  const lingerMs = opts.lingerMs ?? LINGER_MS;
  return inProcess.run(lockFile, async () => {
    let h = held.get(lockFile);
    if (h) {
      clearTimeout(h.timer);
      h.timer = undefined;
    } else {
      const fd = openLockFile(lockFile);
      try {
        flockSpawns++;
        await flockFd(fd, { mode: 'exclusive', wait: true });
      } catch (err) {
        closeSync(fd);
        throw err;
      }
      h = { fd, since: Date.now(), hold: ++holds };
      held.set(lockFile, h);
      if (!exitHooked) {
        exitHooked = true;
        process.once('exit', releaseIdRecordsLocks); // a CLI process exits before the timer
      }
    }
    h.beforeRelease = opts.beforeRelease;
    try {
      return await fn();
    } finally {
      const mine = h;
      if (Date.now() - mine.since >= MAX_HOLD_MS) releaseIdRecordsLock(lockFile, mine);
      else {
        mine.timer = setTimeout(() => releaseIdRecordsLock(lockFile, mine), lingerMs);
        mine.timer.unref();
      }
    }
  });
}

/**
 * The number of this process's current hold of `lockFile`, undefined when it holds none: a cache of
 * what only lock holders change (the node's claims, id-claims.ts) is valid while this is the same.
 */
export function holdOf(lockFile: string): number | undefined {
  return held.get(lockFile)?.hold;
}

/**
 * Lets go of `lockFile` when this process only keeps it for a burst (no one in it now): before it
 * waits for another lock that another process may hold while waiting for this one (id-ranges.ts
 * takes the records' lock, then the node's; a node lock kept from an earlier start would otherwise
 * stall that process until its timer).
 */
export function releaseIfIdle(lockFile: string): void {
  const h = held.get(lockFile);
  if (!h?.timer) return;
  clearTimeout(h.timer);
  releaseIdRecordsLock(lockFile, h);
}

function releaseIdRecordsLock(lockFile: string, h: Held): void {
  if (held.get(lockFile) !== h) return;
  held.delete(lockFile);
  try {
    h.beforeRelease?.();
  } catch {
    // Left as it is (the journal stays, read with the file): the next holder tries again.
  }
  closeSync(h.fd); // releases the flock
}

/** Releases every lock this process keeps (tests and benchmarks that compare processes). */
export function releaseIdRecordsLocks(): void {
  for (const [file, h] of held) {
    clearTimeout(h.timer);
    releaseIdRecordsLock(file, h);
  }
}
