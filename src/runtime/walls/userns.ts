/**
 * User namespaces: the container's root is an unprivileged uid of the node, so what escapes the
 * container's mounts meets ordinary DAC. Whether a container gets one is `hostUsers` (Kubernetes'
 * field; absent: the node's default, `--host-users`, which plan resolves, see
 * plan/user-namespace.ts); which ids it gets is its own range (id-ranges.ts, id-pool.ts).
 *
 * The template's or image's layers are not shifted: they are mounted idmapped into the
 * container's range at each start (idmap.ts), so a range costs no copy and nothing in the layer
 * store is chowned.
 *
 * What the private area is owned by is recorded in <containerDir>/ids.json (`base`: 0 = the node's
 * own ids, else the first host id of the range; see id-ranges.ts). When the mapping changes (a
 * planned replace), the private area is shifted before the start (every owner in the old range
 * moves to the same offset in the new one), so nothing written under one mapping becomes unusable
 * under the other.
 */
import { chmodSync, chownSync, lchownSync, lstatSync, mkdirSync, readdirSync, unlinkSync } from 'node:fs';
import { chmod, rm } from 'node:fs/promises';
import path from 'node:path';
import { readIds, recordOwner } from './id-ranges.js';
import type { IdClaims } from './id-claims.js';
import type { IdRange } from './id-pool.js';

export type { IdRange } from './id-pool.js';

export class UserNamespaceError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UserNamespaceError';
  }
}

export interface OciUserNamespace {
  uidMappings: { containerID: number; hostID: number; size: number }[];
  gidMappings: { containerID: number; hostID: number; size: number }[];
}

/** The OCI id mappings of a container, or undefined when it uses the node's ids. */
export function userNamespaceFor(hostUsers: boolean | undefined, range: IdRange): OciUserNamespace | undefined {
  if (hostUsers !== false) return undefined;
  const m = [{ containerID: 0, hostID: range.hostID, size: range.size }];
  return { uidMappings: m, gidMappings: m.map((x) => ({ ...x })) };
}

/** An id of `from`'s range at the same offset in `to`'s; ids outside `from`'s range stay. */
function shiftId(id: number, from: number, to: number, size: number): number {
  if (from === 0) return id < size ? to + id : id;
  return id >= from && id < from + size ? to + (id - from) : id;
}

/** Entries re-owned between two turns of the event loop (shiftTree). */
const SHIFT_SLICE = 256;

/**
 * Re-owns every file under dir (dir included) from one range to the other, without following
 * symlinks. chown clears set-uid/set-gid bits, so the mode is put back afterwards.
 *
 * Synchronous calls, a slice of entries at a time with the event loop turning in between: a
 * promise per lstat and lchown was 3.4 ms of CPU per create (the host view's ~75 markers copied
 * into every unprivileged container then), several times the calls themselves; a large private
 * area (a range change) still leaves the loop free every SHIFT_SLICE entries.
 */
export async function shiftTree(dir: string, from: number, to: number, size: number): Promise<number> {
  let n = 0;
  let sinceTurn = 0;
  const stack = [dir];
  while (stack.length) {
    if (++sinceTurn > SHIFT_SLICE) {
      sinceTurn = 0;
      await new Promise((r) => setImmediate(r));
    }
    const p = stack.pop()!;
    const st = lstatSync(p);
    const uid = shiftId(st.uid, from, to, size);
    const gid = shiftId(st.gid, from, to, size);
    if (uid !== st.uid || gid !== st.gid) {
      lchownSync(p, uid, gid);
      if (!st.isSymbolicLink() && st.mode & 0o6000) chmodSync(p, st.mode & 0o7777);
      n++;
    }
    if (st.isDirectory()) for (const e of readdirSync(p)) stack.push(path.join(p, e));
  }
  return n;
}

export interface PrivateArea {
  /** <stateDir>/containers/<id> */
  dir: string;
  upper: string;
  work: string;
  rootfs: string;
}

/**
 * Before a start: the private area (upper, work) owned by the ids the container runs with; the
 * container dir around it and acetate's records in it (ids.json, record.json, host-view.json, …)
 * stay node root's (closeContainerDir).
 */
export async function preparePrivateArea(
  pa: PrivateArea,
  userns: OciUserNamespace | undefined,
  claims?: IdClaims,
): Promise<{ shifted: number; from: number; to: number }> {
  const recorded = await readIds(pa.dir);
  // Never run with a user namespace: owned by the node's ids as created, nothing to shift.
  if (!recorded && !userns) {
    openContainerRoot(pa.upper);
    return { shifted: 0, from: 0, to: 0 };
  }
  const had = recorded ?? { base: 0, size: 65_536 };
  const to = userns ? userns.uidMappings[0]!.hostID : 0;
  const size = userns ? userns.uidMappings[0]!.size : had.size;
  let shifted = 0;
  if (had.base !== to) {
    // overlayfs' work dir holds nothing between mounts; it is simply emptied.
    await rm(pa.work, { recursive: true, force: true });
    shifted = await shiftTree(pa.upper, had.base, to, Math.min(size, had.size));
    await recordOwner(pa.dir, to, size, claims);
  }
  const owner = to;
  // Synchronous from here (as shiftTree): a dozen metadata calls on acetate's own dirs at every
  // start, a few µs each, where each thread-pool round trip cost the loop more than the call.
  mkdirSync(pa.work, { recursive: true, mode: 0o700 });
  for (const d of [pa.upper, pa.work]) {
    // Never through a link: the dir of a container made by an earlier acetate was its range's, and
    // a link planted there would hand the node file it points at to the range.
    if (!lstatSync(d).isDirectory()) throw new UserNamespaceError(`${d} is not a directory (a symlink?): refusing to give it to the container's ids`);
    lchownSync(d, owner, owner);
  }
  closeContainerDir(pa.dir, owner);
  openContainerRoot(pa.upper); // after the chown, which would clear set-id bits
  return { shifted, from: had.base, to };
}

/**
 * The container dir is node root's: with a user namespace root:<the range's root group> 0710 (the
 * range's root crosses it to its upper/work dirs, runc mounts the overlay inside the namespace,
 * but cannot list it or write in it; other node users cannot even cross it to the 0755 upper),
 * root:root 0700 without. Were it the range's, a process that escaped the container as the range's
 * root could rewrite ids.json and start in a neighbour's range at the next restart, or reset
 * host-view.json. A container dir of an earlier acetate (owned by the range, 0700) is closed at
 * its next start, and any non-dir entry the range made or re-owned in it is made node root's, not
 * set-id and not writable by others, and a symlink is removed (acetate writes its records as root;
 * the dirs in it, upper, work, rootfs and a disk image's mount, keep their owners).
 */
function closeContainerDir(dir: string, rangeRoot: number): void {
  chownSync(dir, 0, rangeRoot);
  chmodSync(dir, rangeRoot ? 0o710 : 0o700);
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    const st = lstatSync(p);
    if (st.isDirectory()) continue;
    // acetate makes no link here: one is the range's, and acetate reads its records by these names.
    if (st.isSymbolicLink()) {
      unlinkSync(p);
      continue;
    }
    if (st.uid !== 0 || st.gid !== 0) lchownSync(p, 0, 0);
    // Never set-id (the chown cleared the bits; the old mode would put them back on a root file
    // the range can still run: a setuid root binary), never writable by others.
    if ((st.mode & 0o7777) !== (st.mode & 0o755)) chmodSync(p, st.mode & 0o755);
  }
}

/**
 * The upper dir is the container's `/` (the merged root takes its mode): 0755, as Docker, Podman
 * and Kubernetes give, so a program that drops to a non-root uid (nginx workers, `busybox httpd
 * -u`, sshd's privilege separation) can reach its files. It is created 0700 like every dir of
 * the container's (the container dir around it stays closed, so node users still cannot reach it).
 * 0700, which acetate gave the root of every template container before, is opened on each start,
 * so existing containers are fixed; any other mode is the container's own (a `chmod 750 /` inside
 * it) and is kept, as Docker keeps it across restarts.
 */
function openContainerRoot(upper: string): void {
  const st = lstatSync(upper);
  if ((st.mode & 0o7777) === 0o700) chmodSync(upper, 0o755);
}

/**
 * The container's root (an id of the range) must be able to walk from `/` to its private area
 * and its template: dirs on that path owned by node root get o+x (0711: no listing, no reading),
 * as Docker's data root does under userns-remap. Ancestors outside acetate's dirs are not changed:
 * a clear error names them. Synchronous: taken for three paths at every start, ~15 ancestors whose
 * lstat is a few µs each, where a thread-pool round trip each was ~1 ms of the loop per start.
 */
export async function ensureTraversable(target: string, ownDirs: readonly string[]): Promise<void> {
  const parts = path.resolve(target).split('/').filter(Boolean);
  let p = '/';
  for (const part of parts.slice(0, -1)) {
    p = path.join(p, part);
    const st = lstatSync(p);
    if ((st.mode & 0o001) !== 0) continue;
    if (ownDirs.some((d) => p === d || p.startsWith(`${d}/`))) {
      await chmod(p, (st.mode & 0o7777) | 0o711);
      continue;
    }
    throw new UserNamespaceError(
      `${p} (mode ${(st.mode & 0o777).toString(8)}) cannot be traversed by the container's unprivileged root; ` +
        `user namespaces need o+x on every directory above the state dir (chmod o+x ${p})`,
    );
  }
}
