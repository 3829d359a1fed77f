/**
 * One lock per state dir and run dir, held by every acetate process that changes the node
 * (`apply`, `run`, `template import|rm`) for as long as it lives. Two such processes on one
 * state dir would both create, start and sweep the same containers (runc "already exists",
 * conmon racing conmon, a process started twice); read-only commands never take the lock.
 *
 * Why flock(2), taken through util-linux's `flock` command: the kernel releases the lock when
 * the holder dies, however it dies (SIGKILL, OOM, power loss of the tmpfs), so there is no stale
 * lock to detect, no pid-reuse race and no takeover protocol to get right, which a hand-written
 * O_EXCL lock file needs. Node has no flock binding, and the npm packages that add one build
 * native code at install. The lock belongs to the open file description, not the process that
 * called flock: `flock FD` run on a descriptor we pass it locks our open file, and the lock stays
 * with us after that child exits (as `exec 9>lock; flock 9` does in shell). Node opens every file
 * with O_CLOEXEC, so no child acetate starts (conmon, runc) inherits it and outlives us holding it.
 *
 * The file also says who holds it (pid, command line, start time), for the one line a second
 * process prints.
 */
import { spawn } from 'node:child_process';
import { closeSync, ftruncateSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { readProcStat } from '../util/processes.js';

export const LOCK_FILE = 'acetate.lock';
/** flock's exit status when the lock is held by another process (--conflict-exit-code). */
const CONFLICT = 75;

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

function runFlock(fd: number, args: string[], flockPath: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(flockPath, [...args, '3'], { stdio: ['ignore', 'ignore', 'pipe', fd] });
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    child.once('error', (e) => reject(new Error(`cannot run ${flockPath} (util-linux): ${e.message}`, { cause: e })));
    child.once('exit', (code, signal) => {
      if (code === 0 || code === CONFLICT) resolve(code);
      else reject(new Error(`${flockPath} failed (${code ?? signal}): ${err.trim()}`));
    });
  });
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
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const fd = openSync(file, 'a+', 0o644);
  const flock = opts.flockPath ?? 'flock';
  try {
    let code = await runFlock(fd, ['--exclusive', '--nonblock', '--conflict-exit-code', String(CONFLICT)], flock);
    if (code === CONFLICT) {
      const holder = await holderOf(file);
      if (!opts.wait) throw new NodeLockBusyError(file, holder);
      opts.onWait?.(holder, file);
      code = await runFlock(fd, ['--exclusive'], flock);
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
  const stat = await readProcStat(process.pid);
  const me: LockHolder = { pid: process.pid, command: opts.command, startedAt: new Date().toISOString(), ...(stat ? { startTicks: stat.startTime } : {}) };
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
