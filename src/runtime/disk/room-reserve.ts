/**
 * Room acetate keeps for itself on each container's disk image (`resources.disk`).
 *
 * Why: a container can fill its disk on purpose. acetate still has to write in the overlay's
 * upper dir on that disk while the container runs: the host template's markers that hide node
 * data made after the start (walls/host-view.ts: a whiteout or an opaque dir is an inode, its
 * name a directory entry). Without room those cannot be placed, and root's new data under /opt
 * or `/` stays readable by the container's root until the tenant frees space, which a hostile one
 * never does.
 *
 * How: a file of RESERVE_BYTES at the image's root, beside upper/ and work/ (outside the overlay:
 * the container never sees it). When a write of acetate's fails for want of room, the file is
 * emptied (its blocks freed at once by the truncate's transaction), the write is made, and the
 * file is filled again with all that is free up to its size: it shrinks only by what the
 * markers took (about 1.3 KiB for one at `/`, 19 KiB for one 13 dirs deep, measured).
 * XFS takes inodes from free blocks (its cap on their share of the image is lifted when the
 * reserve is made), so freed blocks serve a new inode too. A running container is frozen
 * meanwhile (runc/freeze-for-room.ts): else a writer of its own would take the freed room first.
 *
 * The budget is finite: a tenant who keeps its disk full while the node makes new entries in its
 * data places uses it up (a few hundred markers at `/`, a dozen 13 dirs deep: each parent dir
 * made in the upper dir is an inode and a block). Below RESERVE_FLOOR it is not counted on:
 * a marker that cannot be placed is reported and tried again every 5 s (host-view-watch.ts). A
 * start needs no room for markers (they are in the view's shared layer, walls/host-layer.ts), only
 * for a first start's machine id: one that cannot be written refuses the start (walls.ts).
 *
 * The reserve is part of the container's disk: 1 MiB of a limit is acetate's (README, "Disk
 * limits"). An image without the file (made by an earlier acetate, or too full at a start) gets it
 * at the next start that has the room.
 */
import { lstatSync } from 'node:fs';
import { lstat, statfs, truncate } from 'node:fs/promises';
import path from 'node:path';
import { exec } from '../../util/exec.js';
import { DiskLimitError } from './driver.js';

export const RESERVE_FILE = '.acetate-reserve';
export const RESERVE_BYTES = 1024 * 1024;
/**
 * Below this a reserve is not counted on: one XFS create reserves its worst case of blocks up
 * front (an inode chunk, directory and btree splits), more than 128 KiB here with a few free
 * (measured by this change's hostile tester: mknod refused with 148 KiB free).
 */
export const RESERVE_FLOOR = 256 * 1024;
/** Refills step down by this on ENOSPC (XFS keeps some of what statfs calls free for its own use). */
const STEP = 64 * 1024;

/** The reserve of the image whose overlay upper dir is `upper` (`<image root>/upper`). */
export function reserveBeside(upper: string): string {
  return path.join(path.dirname(upper), RESERVE_FILE);
}

/** Bytes the reserve file at `file` holds (allocated blocks; 0 without one). */
function heldBy(file: string): number {
  const s = lstatSync(file, { throwIfNoEntry: false });
  return s?.isFile() ? s.blocks * 512 : 0;
}

/**
 * Whether the image under `upper` has a reserve worth a freeze: a regular file holding at least
 * RESERVE_FLOOR (an empty one, left by a fill that found no room, is none).
 */
export function hasReserve(upper: string): boolean {
  return heldBy(reserveBeside(upper)) >= RESERVE_FLOOR;
}

/** Bytes the reserve holds on the image mounted at `mountPoint` (0 without one): not the container's files. */
export function reservedBytes(mountPoint: string): number {
  return heldBy(path.join(mountPoint, RESERVE_FILE));
}

/**
 * Fills the reserve up to RESERVE_BYTES, or to all the image has free (whatever a write before took
 * is all it loses: a reserve emptied for a few markers comes back almost whole), allocated with
 * fallocate(1) (no zeroes written). Returns the bytes it holds after.
 */
export async function fillReserve(file: string): Promise<number> {
  const had = heldBy(file);
  if (had >= RESERVE_BYTES) return had;
  const s = await statfs(path.dirname(file));
  const room = Math.floor((had + s.bavail * s.bsize) / STEP) * STEP;
  for (let want = Math.min(RESERVE_BYTES, room); want > had && want >= STEP; want -= STEP) {
    try {
      await exec('fallocate', ['-l', String(want), file], { timeoutMs: 30_000 });
      return heldBy(file);
    } catch {
      // ENOSPC: a step less
    }
  }
  return had;
}

/** A failure for want of room (the cause chain is walked, and an AggregateError's errors: host-view.ts collects each entry's). */
export function isNoRoom(err: unknown, depth = 0): boolean {
  if (!err || typeof err !== 'object' || depth > 8) return false;
  const e = err as NodeJS.ErrnoException & { stderr?: unknown; errors?: unknown[]; cause?: unknown };
  if (e.code === 'ENOSPC' || e.code === 'EDQUOT') return true;
  // A tool's own words (mknod, setfattr through the exec helper): its stderr, not a message that
  // may quote a node path.
  if (typeof e.stderr === 'string' && /No space left on device|Disk quota exceeded/.test(e.stderr)) return true;
  if (Array.isArray(e.errors) && e.errors.some((x) => isNoRoom(x, depth + 1))) return true;
  return isNoRoom(e.cause, depth + 1);
}

/**
 * At a start, the image mounted at `mountPoint` (nothing writes on it): its reserve made or filled
 * again. At its making, XFS's cap on the share of the image its inodes may take is lifted
 * (`xfs_growfs -m 0`, live, once per image): with the default 25 %, a tenant who made enough empty
 * files would leave no inode to take even with the reserve freed. Best effort: a full image starts
 * as it is (the reserve comes at a later start with room).
 */
export async function ensureReserve(mountPoint: string): Promise<void> {
  const file = path.join(mountPoint, RESERVE_FILE);
  if (!(await lstat(file).catch(() => undefined))) {
    try {
      await exec('xfs_growfs', ['-m', '0', mountPoint], { timeoutMs: 30_000 });
    } catch {
      return; // no reserve without it (the file says it was done): tried again at the next start
    }
  }
  await fillReserve(file);
}

/**
 * `write` with the reserve of the image under `upper` freed for it, then the reserve filled again.
 * Without a reserve (no disk limit, an older image) `write` runs as it is. The caller makes sure
 * nothing else writes on the image meanwhile (the container not started yet, or frozen).
 */
export async function withReserve<T>(upper: string, write: () => Promise<T>): Promise<T> {
  const file = reserveBeside(upper);
  if (heldBy(file) === 0) return write();
  await truncate(file, 0);
  try {
    return await write();
  } finally {
    await fillReserve(file);
  }
}

/**
 * At a start, around `runc create` (the container created, none of its code running yet): with its
 * disk (nearly) full, the reserve is freed for overlayfs, which makes its `work/work` dir anew at
 * each mount and else mounts the container's root read-only. One statfs when there is room.
 * With the disk full and the reserve used up (below RESERVE_FLOOR: the tenant kept its disk full
 * while acetate spent the room on markers) the start is refused, saying how to end it, rather than
 * made with a read-only root: XFS asks ~47 blocks up front for that mkdir. (Until the host view's
 * markers became a shared layer, such a start was refused by their own writes, walls.ts.) An image
 * without a reserve file (made by an earlier acetate) starts as before.
 */
export async function withReserveIfFull<T>(upper: string, create: () => Promise<T>): Promise<T> {
  const file = reserveBeside(upper);
  const reserve = lstatSync(file, { throwIfNoEntry: false });
  if (!reserve?.isFile()) return create(); // no disk limit, or an image without one
  const s = await statfs(upper);
  if (s.bavail * s.bsize >= RESERVE_FLOOR) return create();
  if (reserve.blocks * 512 >= RESERVE_FLOOR) return withReserve(upper, create);
  throw new DiskLimitError(
    "its disk is full, and acetate's room on it is used up: overlayfs would mount its root read-only; not started: grow resources.disk (the reserve is filled again from the new room at the next start)",
  );
}
