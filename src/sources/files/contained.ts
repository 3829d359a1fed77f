/**
 * Keeping a manifest tree's reads inside the tree. A repository (or whoever writes the manifest
 * directory) is less trusted than the node: a committed `x.yaml -> /etc/shadow` must not make
 * acetate, running as root, read that file and quote it in errors, logs and status (Argo CD's
 * CVE-2022-24348). Symlinks that stay inside the tree are followed; one resolving outside it is
 * refused before anything is opened or stat()ed through it.
 *
 * The check is done twice: on the path before the file is opened (on the file itself opened
 * with O_PATH, or realpath for a symlink), and on the opened file itself (/proc/self/fd/N names
 * what was really opened), so a link swapped between the two still reads nothing from outside. The file is first opened with O_PATH, which does not open the
 * file itself (a device's open, a FIFO's, has effects of its own), and reopened for reading
 * through /proc/self/fd only once it is known to be a regular file inside the tree.
 */
import { closeSync, constants, fstatSync, openSync, readlinkSync, realpathSync, type Stats } from 'node:fs';
import path from 'node:path';
import { openForReadNonBlocking, readFdPrefix } from '../../util/bounded-read.js';

/** True when `real` (a resolved path) is `rootReal` or under it. */
export function isInside(real: string, rootReal: string): boolean {
  if (real === rootReal) return true;
  const base = rootReal.endsWith(path.sep) ? rootReal : rootReal + path.sep;
  return real.startsWith(base);
}

/** The reason a path is refused, or undefined when it resolves inside rootReal. Never reads the target. */
export function outsideReason(p: string, rootReal: string): string | undefined {
  let real: string;
  try {
    real = realpathSync.native(p); // realpath(3) in C: the JS one (an lstat per component, in JS) was 65 ms of a plan over 2,500 files
  } catch (err) {
    return `cannot resolve: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
  }
  return isInside(real, rootReal) ? undefined : OUTSIDE_MESSAGE;
}

export const OUTSIDE_MESSAGE = 'symlink resolves outside the manifest directory: refused, not read';

/** The resolved root, or the root itself when it cannot be resolved (reads then fail on their own). */
export function realRoot(root: string): string {
  try {
    return realpathSync.native(root);
  } catch {
    return path.resolve(root);
  }
}

/** Linux's O_PATH (the same on x86-64 and arm64); Node's fs.constants does not list it. */
const O_PATH = 0o10000000;

/**
 * The stat of `file` when it lies inside rootReal and is no symlink, taken from the file as
 * opened (O_PATH | O_NOFOLLOW: nothing of it is opened, a symlink as the last component is not
 * followed) after the opened file's real path (/proc/self/fd/N) was checked: no window between
 * the check and the stat, and 4 system calls where realpath(3) makes one per component of the
 * path, then a stat (2,500 of those were ~20 ms of a plan). 'symlink': the caller resolves it.
 */
export function statContained(file: string, rootReal: string): { ok: true; st: Stats } | { ok: false; message: string } | 'symlink' {
  let fd: number;
  try {
    fd = openSync(file, O_PATH | constants.O_NOFOLLOW);
  } catch (err) {
    return { ok: false, message: `cannot resolve: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
  }
  try {
    let opened: string;
    try {
      opened = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      opened = '';
    }
    const st = fstatSync(fd);
    if (st.isSymbolicLink()) return 'symlink';
    return isInside(opened, rootReal) ? { ok: true, st } : { ok: false, message: OUTSIDE_MESSAGE };
  } catch (err) {
    return { ok: false, message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
  } finally {
    closeSync(fd);
  }
}

export type ContainedRead = { ok: true; buf: Buffer; st: Stats } | { ok: false; message: string; special?: Stats };

/**
 * Opens file (non-blocking: a FIFO never waits for a writer), checks that what was opened lies
 * inside rootReal, and reads at most maxBytes. Nothing of a file outside is read.
 */
export function readContained(file: string, rootReal: string | undefined, maxBytes: number): ContainedRead {
  let pathFd: number;
  try {
    pathFd = openSync(file, O_PATH);
  } catch (err) {
    return { ok: false, message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
  }
  let fd: number | undefined;
  try {
    if (rootReal !== undefined) {
      let opened: string;
      try {
        opened = readlinkSync(`/proc/self/fd/${pathFd}`);
      } catch {
        opened = '';
      }
      if (!isInside(opened, rootReal)) return { ok: false, message: OUTSIDE_MESSAGE };
    }
    const st = fstatSync(pathFd);
    if (!st.isFile()) return { ok: false, message: 'not a regular file', special: st };
    if (st.size > maxBytes) return { ok: false, message: `file is ${st.size} bytes, larger than the ${maxBytes} bytes a manifest may have` };
    // The very inode checked above: a magic link of /proc is not resolved again by name.
    fd = openForReadNonBlocking(`/proc/self/fd/${pathFd}`);
    return { ok: true, buf: readFdPrefix(fd, st.size), st };
  } catch (err) {
    return { ok: false, message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
  } finally {
    closeSync(pathFd);
    if (fd !== undefined) closeSync(fd);
  }
}
