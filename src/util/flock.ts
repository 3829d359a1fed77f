/**
 * flock(2) on a file this process keeps open, taken through util-linux's `flock` command: what
 * the node lock (runtime/node-lock.ts) and the images lock (images/images-lock.ts) are made of.
 *
 * Why flock(2): the kernel releases the lock when the holder dies, however it dies (SIGKILL, OOM),
 * so there is no stale lock to detect and no takeover protocol to get right. Node has no flock
 * binding, and the npm packages that add one build native code at install. The lock belongs to
 * the open file description, not the process that called flock: `flock 3` run with our descriptor
 * as its fd 3 locks our open file, and the lock stays with us after that child exits (as
 * `exec 9>lock; flock 9` does in shell); closing the descriptor releases it. Node opens every file
 * with O_CLOEXEC, so no child acetate starts (conmon, runc) inherits it and outlives us holding it.
 */
import { spawn } from 'node:child_process';
import { closeSync, fchmodSync, fstatSync, mkdirSync, openSync } from 'node:fs';
import path from 'node:path';

/** flock's exit status when the lock is held by another open file (--conflict-exit-code). */
const CONFLICT = 75;

export interface FlockRequest {
  mode: 'shared' | 'exclusive';
  /** false: fail at once when held; true: wait for ever; a number: wait up to that many ms. */
  wait: boolean | number;
  /** The flock binary (default: `flock` from $PATH). */
  flockPath?: string;
}

/**
 * Locks the open file `fd` as asked. True once it is ours; false when another holds it (at once
 * with wait false, or after the wait given). Converting a lock we hold (shared ↔ exclusive) is
 * flock(2)'s own: not atomic.
 */
export function flockFd(fd: number, req: FlockRequest): Promise<boolean> {
  const flockPath = req.flockPath ?? 'flock';
  const args = [`--${req.mode}`, '--conflict-exit-code', String(CONFLICT)];
  if (req.wait === false) args.push('--nonblock');
  else if (typeof req.wait === 'number') args.push('--timeout', String(Math.max(0, req.wait) / 1000));
  return new Promise((resolve, reject) => {
    const child = spawn(flockPath, [...args, '3'], { stdio: ['ignore', 'ignore', 'pipe', fd] });
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    child.once('error', (e) => reject(new Error(`cannot run ${flockPath} (util-linux): ${e.message}`, { cause: e })));
    child.once('exit', (code, signal) => {
      if (code === 0 || code === CONFLICT) resolve(code === 0);
      else reject(new Error(`${flockPath} failed (${code ?? signal}): ${err.trim()}`));
    });
  });
}

/**
 * Opens (creating it and its dir, private to root) a lock file for flockFd. The file is root's
 * only too (0600, and one an older acetate made 0644 is made so): the node lock's holds the
 * holder's pid and command line, which no other user of the node needs to read (a hostile round).
 */
export function openLockFile(file: string): number {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const fd = openSync(file, 'a+', 0o600);
  try {
    if ((fstatSync(fd).mode & 0o7777) !== 0o600) fchmodSync(fd, 0o600);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  return fd;
}
