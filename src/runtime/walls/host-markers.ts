/**
 * One host-view marker in a container's upper dir: what placing it writes (Placed, recorded in
 * <containerDir>/host-view.json), whether it is still as placed, placing and removing it; and the
 * container's own machine id. host-view.ts decides which markers a container gets.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  fstatSync,
  lchownSync,
  mkdirSync,
  openSync,
  readlinkSync,
  rmdirSync,
  renameSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
  type Stats,
} from 'node:fs';
import { lstat, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { exec } from '../../util/exec.js';
import { lockedCopy, type ViewEntry } from './host-masks.js';
import { RANGE_SIZE } from './id-pool.js';
import { openForReadNonBlocking, readFdPrefix } from '../../util/bounded-read.js';
import { entryPath, fdPathForChild, lstatEntry, openOwnDir, openParent, type Beneath } from './upper-beneath.js';

/** /etc/shadow and /etc/gshadow larger than this are not copied (locked copies are made of at most this). */
const MAX_SHADOW_BYTES = 4 * 1024 * 1024;
export const OPAQUE_XATTRS = ['trusted.overlay.opaque', 'user.overlay.opaque'];

export interface Placed {
  kind: string;
  /** sha256 of a file's content or a symlink's target. */
  sha?: string;
}
export type Record_ = Record<string, Placed>;

export const sha = (s: string) => createHash('sha256').update(s).digest('hex');

export interface ApplyTarget {
  hostRoot: string;
  stateDir: string;
  /** <stateDir>/containers/<id>: host-view.json and machine-id are kept here. */
  containerDir: string;
  upper: string;
  /** Node id the container's root is (0 without a user namespace): owner of what is written. */
  idBase: number;
}

/** The container's machine id: 32 hex digits (systemd's format), made once and kept in its dir. */
export async function machineId(containerDir: string): Promise<string> {
  const file = path.join(containerDir, 'machine-id');
  const had = (await readFile(file, 'utf8').catch(() => '')).trim();
  if (/^[0-9a-f]{32}$/.test(had)) return had;
  const id = randomBytes(16).toString('hex');
  await writeFile(`${file}.tmp`, `${id}\n`, { mode: 0o644 });
  await rename(`${file}.tmp`, file);
  return id;
}

/** The node's entry at `rel` under hostRoot (never followed: the owner and mode copy-up would give); undefined when none. */
export function nodeEntry(hostRoot: string, rel: string): Promise<Stats | undefined> {
  return lstat(path.join(hostRoot, rel)).catch(() => undefined);
}

/** What a file marker holds for this container. */
async function fileContent(e: ViewEntry, t: ApplyTarget): Promise<string | undefined> {
  if (e.action.kind === 'machine-id') return `${await machineId(t.containerDir)}\n`;
  if (e.action.kind === 'locked-copy') {
    const st = await nodeEntry(t.hostRoot, e.path);
    if (!st?.isFile() || st.size > MAX_SHADOW_BYTES) return undefined;
    return lockedCopy(await readFile(path.join(t.hostRoot, e.path), 'utf8'));
  }
  return undefined;
}

/** The marker's record (what placing it wrote); undefined when the node has nothing to mark. */
export async function placedFor(e: ViewEntry, t: ApplyTarget): Promise<Placed | undefined> {
  switch (e.action.kind) {
    case 'absent':
      return { kind: 'absent' };
    case 'empty':
      // An empty dir only where the node has one (no /etc/docker made where the node has none).
      return (await nodeEntry(t.hostRoot, e.path)) ? { kind: 'empty' } : undefined;
    case 'symlink':
      return (await nodeEntry(t.hostRoot, e.path)) ? { kind: 'symlink', sha: sha(e.action.target) } : undefined;
    default: {
      const c = await fileContent(e, t);
      return c === undefined ? undefined : { kind: e.action.kind, sha: sha(c) };
    }
  }
}

/** Does the upper's entry still hold what acetate placed? Read without following it (upper-beneath.ts). */
export async function stillPlaced(at: Beneath, rec: Placed): Promise<boolean> {
  const st = await lstatEntry(at);
  if (!st) return false;
  if (rec.kind === 'absent') return st.isCharacterDevice() && st.rdev === 0;
  if (rec.kind === 'empty') return st.isDirectory();
  if (rec.kind === 'symlink') {
    try {
      return st.isSymbolicLink() && sha(readlinkSync(entryPath(at))) === rec.sha;
    } catch {
      return false; // swapped since the lstat
    }
  }
  if (!st.isFile() || st.size > MAX_SHADOW_BYTES) return false;
  let fd: number;
  try {
    fd = openForReadNonBlocking(entryPath(at), constants.O_NOFOLLOW);
  } catch {
    return false; // swapped for a link or gone since the lstat: not as placed
  }
  try {
    const now = fstatSync(fd);
    return now.isFile() && sha(readFdPrefix(fd, Math.min(now.size, MAX_SHADOW_BYTES)).toString('utf8')) === rec.sha;
  } finally {
    closeSync(fd);
  }
}

/**
 * A node id as the container's range holds it: id + idBase inside the range's 65536, the range's
 * nobody (65534) beyond it, never an id of the neighbouring range (a node dir owned by uid 70000
 * was made 1000070000, another container's id). Without a user namespace (idBase 0), the id.
 */
function inRange(id: number, idBase: number): number {
  if (!idBase) return id;
  return idBase + (id < RANGE_SIZE ? id : NOBODY);
}
const NOBODY = 65_534;

/**
 * Parent dirs of a marker in the upper dir, made where missing as copy-up makes them (the node's
 * mode and owner); the open dir that holds the marker (the caller closes its fd). Undefined: the
 * container replaced one (a file or link there), left to it.
 */
export function ensureParents(rel: string, t: ApplyTarget): Promise<Beneath | undefined> {
  return openParent(t.upper, rel, async (sub) => {
    const node = await nodeEntry(t.hostRoot, sub);
    return { uid: inRange(node?.uid ?? 0, t.idBase), gid: inRange(node?.gid ?? 0, t.idBase), mode: node?.isDirectory() ? node.mode & 0o7777 : 0o755 };
  });
}

/**
 * Places one marker at `at` (nothing there yet), creating it and giving it its owner and mode by
 * calls that follow no link the container may have put there meanwhile (upper-beneath.ts): an
 * entry it made first fails the create (EEXIST) and stays its own.
 */
export async function place(e: ViewEntry, t: ApplyTarget, at: Beneath): Promise<Placed | undefined> {
  const node = await nodeEntry(t.hostRoot, e.path);
  const uid = inRange(node?.uid ?? 0, t.idBase);
  const gid = inRange(node?.gid ?? 0, t.idBase);
  const p = entryPath(at);
  switch (e.action.kind) {
    case 'absent':
      // mknod(1) runs in a child: the dir's fd is named through this process's /proc entry.
      await exec('mknod', ['--', `${fdPathForChild(at.fd)}/${at.name}`, 'c', '0', '0']);
      lchownSync(p, uid, gid);
      return { kind: 'absent' };
    case 'empty': {
      mkdirSync(p, { mode: 0o700 });
      const d = openOwnDir(at);
      if (d === undefined) return undefined; // swapped since the mkdir: the container's
      try {
        // Opaque first, while it is still root's 0700: a dir that could not be made opaque (its
        // disk full) is removed, never left to show the node's dir as the container's own.
        // Through the fd's own /proc link: the very dir made and opened above.
        for (const n of OPAQUE_XATTRS) await exec('setfattr', ['-n', n, '-v', 'y', '--', fdPathForChild(d)]);
        fchownSync(d, uid, gid);
        fchmodSync(d, node?.isDirectory() ? node.mode & 0o7777 : 0o755);
      } catch (err) {
        rmdirSync(p);
        throw err;
      } finally {
        closeSync(d);
      }
      return { kind: 'empty' };
    }
    case 'symlink':
      symlinkSync(e.action.target, p);
      lchownSync(p, uid, gid);
      return { kind: 'symlink', sha: sha(e.action.target) };
    default: {
      // The content as read now: what is recorded is what was written.
      const c = await fileContent(e, t);
      if (c === undefined) return undefined;
      const mode = e.action.kind === 'machine-id' ? 0o444 : node ? node.mode & 0o777 : 0o640;
      const fd = openSync(p, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
      try {
        writeFileSync(fd, c); // loops over short writes
        fchownSync(fd, uid, gid);
        fchmodSync(fd, mode);
      } catch (err) {
        unlinkSync(p); // no partial copy left
        throw err;
      } finally {
        closeSync(fd);
      }
      return { kind: e.action.kind, sha: sha(c) };
    }
  }
}

/** A marker that is a file of content (a locked copy, the machine id): replaced in place when it changes. */
export const isFileMarker = (r: Placed): boolean => r.kind === 'locked-copy' || r.kind === 'machine-id';

/**
 * A file marker's new content, written beside it (O_EXCL, not through a link) and renamed over it:
 * one that cannot be written (the container filled its disk) leaves the old one in place, still
 * hiding the node's file.
 */
export async function replaceFile(e: ViewEntry, t: ApplyTarget, at: Beneath): Promise<Placed | undefined> {
  const tmp: Beneath = { fd: at.fd, name: `.acetate-${at.name}.${randomBytes(4).toString('hex')}` };
  try {
    const placed = await place(e, t, tmp);
    if (placed) renameSync(entryPath(tmp), entryPath(at));
    return placed;
  } catch (err) {
    try {
      unlinkSync(entryPath(tmp));
    } catch {
      // not made
    }
    throw err;
  }
}

/** Takes a marker out (an opaque dir loses its xattrs, anything else is unlinked), following no link. */
export async function unplace(at: Beneath, rec: Placed): Promise<void> {
  if (rec.kind === 'empty') {
    const d = openOwnDir(at);
    if (d === undefined) return;
    try {
      for (const n of OPAQUE_XATTRS) await exec('setfattr', ['-x', n, '--', fdPathForChild(d)]).catch(() => undefined);
    } finally {
      closeSync(d);
    }
    return;
  }
  unlinkSync(entryPath(at));
}
