/**
 * Acting in a running container's upper dir, which its root changes at will (it is the range's):
 * a path there is walked one dir at a time from the upper dir's own fd, each opened
 * O_PATH|O_DIRECTORY|O_NOFOLLOW through /proc/self/fd/N/<name>, and the entry itself is created,
 * re-owned, read or removed by calls that do not follow it either (lchown, O_NOFOLLOW opens,
 * fchown/fchmod on what was opened, unlink). So acetate, node root, never acts on a node file in
 * place of the container's: a link the container made at the entry or at any dir above it (in the
 * window between a check and the call, which it can win from inside: it sees the node's new entry
 * vanish when its whiteout lands) is not followed. This spells openat2's RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS, which Node does not have.
 */
import { closeSync, constants, fchmodSync, fchownSync, mkdirSync, openSync, type Stats } from 'node:fs';
import { lstat } from 'node:fs/promises';

/** Linux's O_PATH (the same on x86-64 and arm64); Node's fs.constants does not list it. */
const O_PATH = 0o10000000;
const DIR = O_PATH | constants.O_DIRECTORY | constants.O_NOFOLLOW;

/** An entry of an opened dir: `fd` (O_PATH, the caller closes it) holds `name`. */
export interface Beneath {
  fd: number;
  name: string;
}

/** `name` in the dir open as `fd`, a path this process resolves without following `name`. */
export const entryPath = (b: Beneath): string => `/proc/self/fd/${b.fd}/${b.name}`;

/** What an open fd is, as a path a child process resolves (its /proc/self is its own). */
export const fdPathForChild = (fd: number): string => `/proc/${process.pid}/fd/${fd}`;

type Opened = number | 'missing' | 'not-a-dir';

function openDir(p: string): Opened {
  try {
    return openSync(p, DIR);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'missing';
    if (code === 'ENOTDIR' || code === 'ELOOP') return 'not-a-dir'; // a link or a file: the container's
    throw err;
  }
}

/** Owner and mode of a dir made above an entry (as copy-up makes them: the node's). */
export interface DirMeta {
  uid: number;
  gid: number;
  mode: number;
}

/**
 * The dir that holds `rel` under `upper`, opened as above; `make(sub)` gives the owner and mode of
 * a missing dir to make (undefined: not made). Undefined when a dir on the way is not one (the
 * container replaced it: left to it) or is missing and not made.
 */
export async function openParent(upper: string, rel: string, make?: (sub: string) => Promise<DirMeta | undefined>): Promise<Beneath | undefined> {
  const parts = rel.split('/').filter(Boolean);
  if (!parts.length || parts.some((p) => p === '.' || p === '..')) throw new Error(`${rel}: not a path below the upper dir`);
  const first = openDir(upper);
  if (typeof first !== 'number') return undefined;
  let fd = first;
  let sub = '';
  try {
    for (const part of parts.slice(0, -1)) {
      sub = `${sub}/${part}`;
      let next = openDir(`/proc/self/fd/${fd}/${part}`);
      if (next === 'missing' && make) {
        const meta = await make(sub);
        if (meta) next = makeDir({ fd, name: part }, meta);
      }
      if (typeof next !== 'number') {
        closeSync(fd);
        return undefined;
      }
      closeSync(fd);
      fd = next;
    }
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  return { fd, name: parts[parts.length - 1]! };
}

/** Makes the dir `at` and gives it its owner and mode through its own fd; opened as above. */
function makeDir(at: Beneath, meta: DirMeta): Opened {
  try {
    mkdirSync(entryPath(at), { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return 'not-a-dir'; // the container made one first: its own
  }
  const d = openOwnDir(at);
  if (d === undefined) return 'not-a-dir';
  try {
    fchownSync(d, meta.uid, meta.gid);
    fchmodSync(d, meta.mode);
  } finally {
    closeSync(d);
  }
  return openDir(entryPath(at));
}

/** The dir at `at` opened for fchown/fchmod/xattrs (not through a link); undefined when it is not a dir. */
export function openOwnDir(at: Beneath): number | undefined {
  try {
    return openSync(entryPath(at), constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') return undefined;
    throw err;
  }
}

/** lstat of the entry (never follows it); undefined when there is none. */
export function lstatEntry(at: Beneath): Promise<Stats | undefined> {
  return lstat(entryPath(at)).catch(() => undefined);
}
