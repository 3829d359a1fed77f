/**
 * Keeping a manifest tree's reads inside the tree. A repository (or whoever writes the manifest
 * directory) is less trusted than the node: a committed `x.yaml -> /etc/shadow` must not make
 * acetate, running as root, read that file and quote it in errors, logs and status (Argo CD's
 * CVE-2022-24348). Symlinks that stay inside the tree are followed; one resolving outside it is
 * refused before anything outside is stat()ed, listed or read through it.
 *
 * The check is made on what was opened (/proc/self/fd/N names it): a file is opened with O_PATH,
 * which does not open the file itself (a device's open, a FIFO's, has effects of its own), and
 * checked before it is stat()ed; checked again when it is reopened for reading (through
 * /proc/self/fd, once it is known to be a regular file inside the tree); each directory is checked
 * before it is listed. So a link swapped at any moment makes nothing outside be stat()ed, listed
 * or read.
 */
import { closeSync, constants, fstatSync, openSync, readlinkSync, realpathSync, type Dirent, type Stats } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { openForReadNonBlocking, readFdPrefix } from '../../util/bounded-read.js';

/** An error's errno name (ENOENT...), else its message: what the messages here quote of it. */
function codeOf(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
}

/** True when `real` (a resolved path) is `rootReal` or under it. */
export function isInside(real: string, rootReal: string): boolean {
  if (real === rootReal) return true;
  const base = rootReal.endsWith(path.sep) ? rootReal : rootReal + path.sep;
  return real.startsWith(base);
}

/**
 * Why `p` cannot be resolved (`err`: what opening it gave), told without saying whether anything
 * outside the tree exists: a chain of links whose end lies outside the tree (its deepest existing
 * directory, resolved) is refused as outside whether that end exists or not, as an existing file
 * outside is (a hostile round told `x.yaml -> /root/.bash_history`, "broken", from
 * `x.yaml -> /etc/shadow`, "outside"). A chain broken inside the tree is a broken link.
 */
export function unresolvedReason(p: string, rootReal: string, err: unknown): string {
  const code = codeOf(err);
  // Not a path that leads nowhere (EACCES, EIO...): said as it is.
  if (!['ENOENT', 'ELOOP', 'ENOTDIR'].includes(code)) return `cannot resolve: ${code}`;
  let end = path.resolve(p);
  for (let hops = 0; hops < 40; hops++) {
    let link: string;
    let dir: string;
    try {
      link = readlinkSync(end);
      dir = realpathSync.native(path.dirname(end)); // `..` in a link counts from where the kernel is, not from the name
    } catch {
      break;
    }
    end = path.resolve(dir, link);
  }
  if (end === rootReal) return `cannot resolve: ${code}`; // the root itself, gone
  for (let dir = path.dirname(end); ; dir = path.dirname(dir)) {
    try {
      return isInside(realpathSync.native(dir), rootReal) ? `cannot resolve: ${code}` : OUTSIDE_MESSAGE;
    } catch {
      if (dir === '/') return OUTSIDE_MESSAGE;
    }
  }
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
 * The stat of `file` (symlinks followed) when what it leads to lies inside rootReal: taken from
 * the file as opened with O_PATH (nothing of it is opened: a FIFO's or a device's open is not
 * run), after the opened file's real path (/proc/self/fd/N) was checked. One open decides, so
 * no link swapped between a check and the stat can make anything outside be stat()ed (a hostile
 * round read the sizes of files outside through such a swap), and it costs 4 system calls where
 * realpath(3) makes one per path component, then a stat (2,500 of those were ~20 ms of a plan).
 */
export function statContained(file: string, rootReal: string): { ok: true; st: Stats } | { ok: false; message: string } {
  let fd: number;
  try {
    fd = openSync(file, O_PATH);
  } catch (err) {
    return { ok: false, message: unresolvedReason(file, rootReal, err) };
  }
  try {
    let opened: string;
    try {
      opened = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      opened = '';
    }
    return isInside(opened, rootReal) ? { ok: true, st: fstatSync(fd) } : { ok: false, message: OUTSIDE_MESSAGE };
  } catch (err) {
    return { ok: false, message: `cannot read: ${codeOf(err)}` };
  } finally {
    closeSync(fd);
  }
}

/**
 * A directory of the tree listed through the directory as opened, after its real path was
 * checked to lie inside rootReal: a directory swapped for a link to outside between a check and
 * the listing lists nothing (a hostile round named files of a private directory outside the tree
 * in warnings so). Its real path, and its entries (or the reason it is refused).
 */
export async function listContained(
  dir: string,
  rootReal: string,
): Promise<{ ok: true; real: string; st: Stats; entries: Dirent<Buffer>[] } | { ok: false; message: string }> {
  let fd: number;
  try {
    fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NONBLOCK);
  } catch (err) {
    const code = codeOf(err);
    return { ok: false, message: code === 'ENOENT' || code === 'ELOOP' ? unresolvedReason(dir, rootReal, err) : `cannot read directory: ${code}` };
  }
  try {
    const real = readlinkSync(`/proc/self/fd/${fd}`);
    if (!isInside(real, rootReal)) return { ok: false, message: OUTSIDE_MESSAGE };
    // Its stamp before its entries: a change after the stamp was taken changes it again (tree-stamps.ts).
    const st = fstatSync(fd);
    // The very directory checked: /proc/self/fd/N is not resolved again by name.
    return { ok: true, real, st, entries: await readdir(`/proc/self/fd/${fd}`, { withFileTypes: true, encoding: 'buffer' }) };
  } catch (err) {
    return { ok: false, message: `cannot read directory: ${codeOf(err)}` };
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
    return { ok: false, message: `cannot read: ${codeOf(err)}` };
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
    return { ok: false, message: `cannot read: ${codeOf(err)}` };
  } finally {
    closeSync(pathFd);
    if (fd !== undefined) closeSync(fd);
  }
}
