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
 * file is filled again with what is left. XFS takes inodes from free blocks (the image is made
 * with no cap on the share of inodes, `imaxpct=0`), so freed blocks serve a new inode too.
 * A running container is frozen meanwhile (runc/freeze-for-room.ts): else a writer of its own
 * would take the freed room first.
 *
 * The reserve is part of the container's disk: 1 MiB of a limit is acetate's (described in
 * README, "resources.disk"). An image without the file (made by an earlier acetate, or too full to
 * make it at a start) gets it at the next start that has the room; until then a full disk
 * delays the markers until the container frees space, as before.
 */
import { lstatSync, statSync } from 'node:fs';
import { lstat, stat, truncate } from 'node:fs/promises';
import path from 'node:path';
import { exec } from '../../util/exec.js';

export const RESERVE_FILE = '.acetate-reserve';
export const RESERVE_BYTES = 1024 * 1024;
/** Below this a refill is not worth a try (a few inode chunks). */
const RESERVE_MIN = 64 * 1024;

/** The reserve of the image whose overlay upper dir is `upper` (`<image root>/upper`). */
export function reserveBeside(upper: string): string {
  return path.join(path.dirname(upper), RESERVE_FILE);
}

/** Whether the image under `upper` has a reserve (a regular file: nothing else is taken for one). */
export function hasReserve(upper: string): boolean {
  return lstatSync(reserveBeside(upper), { throwIfNoEntry: false })?.isFile() === true;
}

/** Bytes the reserve holds on the image mounted at `mountPoint` (0 without one): not the container's files. */
export function reservedBytes(mountPoint: string): number {
  const s = statSync(path.join(mountPoint, RESERVE_FILE), { throwIfNoEntry: false });
  return s ? s.blocks * 512 : 0;
}

/**
 * Fills the reserve up to RESERVE_BYTES (allocated with fallocate(1): no zeroes written), or as
 * much of it as the image has, halving down to RESERVE_MIN. Returns the bytes it holds after.
 */
export async function fillReserve(file: string): Promise<number> {
  const had = await stat(file).catch(() => undefined);
  if (had && had.size >= RESERVE_BYTES) return had.size;
  for (let want = RESERVE_BYTES; want >= RESERVE_MIN; want /= 2) {
    try {
      await exec('fallocate', ['-l', String(want), file], { timeoutMs: 30_000 });
      return want;
    } catch {
      // ENOSPC: less then
    }
  }
  return had?.size ?? 0;
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
  if (!(await lstat(file).catch(() => undefined))) await exec('xfs_growfs', ['-m', '0', mountPoint], { timeoutMs: 30_000 }).catch(() => undefined);
  await fillReserve(file);
}

/** A failure for want of room (the cause chain is walked: host-view.ts wraps each entry's error). */
export function isNoRoom(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') return true;
    if (/\bENOSPC\b|No space left on device|Disk quota exceeded/.test(String((e as Error).message))) return true;
  }
  return false;
}

/**
 * `write` with the reserve of the image under `upper` freed for it, then the reserve filled again.
 * Without a reserve (no disk limit, an older image) `write` runs as it is. The caller makes sure
 * nothing else writes on the image meanwhile (the container not started yet, or frozen).
 */
export async function withReserve<T>(upper: string, write: () => Promise<T>): Promise<T> {
  const file = reserveBeside(upper);
  if (!hasReserve(upper)) return write();
  await truncate(file, 0);
  try {
    return await write();
  } finally {
    await fillReserve(file);
  }
}
