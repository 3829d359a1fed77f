/**
 * One lock per state dir and run dir, held by every acetate process that changes the node
 * (`apply`, `run`, `template import|rm`) for as long as it lives. Two such processes on one
 * state dir would both create, start and sweep the same containers (runc "already exists",
 * conmon racing conmon, a process started twice); read-only commands never take the lock.
 *
 * Why flock(2), and how it is taken without a native module: see util/flock.ts.
 *
 * The file also says who holds it (pid, command line, start time), for the one line a second
 * process prints.
 */
import { closeSync, ftruncateSync, readFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { flockFd, openLockFile } from '../util/flock.js';
import { readProcStat, selfIdentity } from '../util/processes.js';

export const LOCK_FILE = 'acetate.lock';

export interface LockHolder {
  pid: number;
  command: string;
  startedAt: string;
  /** Start time of the pid in clock ticks since boot (/proc/PID/stat): tells a reused pid apart. */
  startTicks?: number;
}

export class NodeLockBusyError extends Error {
  constructor(
    readonly file: string,
    readonly holder: LockHolder | undefined,
  ) {
    super(
      holder
        ? `${path.dirname(file)} is in use by pid ${holder.pid} (${holder.command}) since ${holder.startedAt}; it changes the same containers: wait for it to finish, or pass --wait`
        : `${path.dirname(file)} is in use by another acetate process; pass --wait to wait for it`,
    );
    this.name = 'NodeLockBusyError';
  }
}

export interface NodeLockOptions {
  /** Wait for the holder to finish instead of failing at once. */
  wait: boolean;
  /** What this process is doing, shown to a process that waits for it: e.g. "acetate apply -f dir". */
  command: string;
  /** Called once when waiting starts, with who holds it. */
  onWait?: (holder: LockHolder | undefined, file: string) => void;
  /** The flock binary (default: `flock` from $PATH). */
  flockPath?: string;
}

export interface NodeLock {
  files: string[];
  /** Releases the locks (also released by the kernel when this process exits). */
  release(): void;
}

/** Who holds the lock, as the holder wrote it; undefined when it is not (yet) written. */
export function readLockHolder(file: string): LockHolder | undefined {
  try {
    const h = JSON.parse(readFileSync(file, 'utf8')) as LockHolder;
    return Number.isSafeInteger(h.pid) ? h : undefined;
  } catch {
    return undefined;
  }
}

/** The holder as written in the file; a holder that just took the lock may not have written it yet. */
async function holderOf(file: string): Promise<LockHolder | undefined> {
  for (let i = 0; i < 20; i++) {
    const h = readLockHolder(file);
    if (h && (await readProcStat(h.pid)) && h.pid !== process.pid) return h;
    await new Promise((r) => setTimeout(r, 25));
  }
  return readLockHolder(file);
}

async function lockOne(file: string, opts: NodeLockOptions, me: LockHolder): Promise<number> {
  const fd = openLockFile(file);
  const flockPath = opts.flockPath;
  try {
    if (!(await flockFd(fd, { mode: 'exclusive', wait: false, flockPath }))) {
      const holder = await holderOf(file);
      if (!opts.wait) throw new NodeLockBusyError(file, holder);
      opts.onWait?.(holder, file);
      await flockFd(fd, { mode: 'exclusive', wait: true, flockPath });
    }
    // Ours now: say who we are (the file was opened for appending, so truncate and write at 0).
    ftruncateSync(fd, 0);
    writeSync(fd, `${JSON.stringify(me)}\n`, 0);
    return fd;
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/**
 * Takes the lock of each dir (`<dir>/acetate.lock`), in order; the same file once. Throws
 * NodeLockBusyError naming the holder when one is held and opts.wait is false.
 */
export async function acquireNodeLock(dirs: string[], opts: NodeLockOptions): Promise<NodeLock> {
  const files = [...new Set(dirs.map((d) => path.join(path.resolve(d), LOCK_FILE)))];
  const self = await selfIdentity();
  const me: LockHolder = { pid: process.pid, command: opts.command, startedAt: new Date().toISOString(), ...(self ? { startTicks: self.startTicks } : {}) };
  const fds: number[] = [];
  const release = (): void => {
    for (const fd of fds.splice(0)) {
      try {
        closeSync(fd);
      } catch {
        /* already closed */
      }
    }
  };
  try {
    for (const f of files) fds.push(await lockOne(f, opts, me));
  } catch (err) {
    release();
    throw err;
  }
  return { files, release };
}
