/**
 * A few MiB held on the state dir's filesystem, so that acetate's own records (a container's
 * status when it stops, its removal) can still be written when something else has filled that
 * filesystem: a full state dir must never stop acetate from stopping or destroying a container,
 * which is also how space is given back. The reserve is an ordinary file of zeros; a write of
 * acetate's that meets ENOSPC removes it and tries once more (writeSmallFileAtomic), and it is
 * made again at the next create or lock, when there is room.
 */
import { closeSync, existsSync, openSync, renameSync, rmSync, statfsSync, writeSync } from 'node:fs';
import path from 'node:path';

export const RESERVE_BYTES = 8 * 2 ** 20;
const RESERVE_NAME = '.space-reserve';

/** Dirs whose filesystem holds a reserve: the reserve file of each. */
const reserves = new Map<string, string>();

/**
 * Holds the reserve of `dir` (made when missing and the filesystem has twice its size free; a
 * node already that full gets none until it has the room again). Cheap when it exists.
 */
export function holdSpaceReserve(dir: string, bytes = RESERVE_BYTES): void {
  const file = path.join(path.resolve(dir), RESERVE_NAME);
  reserves.set(`${path.resolve(dir)}/`, file);
  if (existsSync(file)) return;
  try {
    const s = statfsSync(dir);
    if (s.bavail * s.bsize < 2 * bytes) return;
    const fd = openSync(`${file}.tmp`, 'w', 0o600);
    try {
      const zeros = Buffer.alloc(1024 * 1024); // written, not sparse: the blocks must be taken
      for (let n = 0; n < bytes; n += zeros.length) writeSync(fd, zeros, 0, Math.min(zeros.length, bytes - n));
    } finally {
      closeSync(fd);
    }
    renameSync(`${file}.tmp`, file); // named only once whole: a reserve cut short by ENOSPC is not one
  } catch {
    rmSync(`${file}.tmp`, { force: true });
  }
}

/** Gives up the reserve of the filesystem `file` is on (under a dir that holds one); true when there was one. */
export function releaseSpaceReserve(file: string): boolean {
  const abs = path.resolve(file);
  for (const [prefix, reserve] of reserves) {
    if (!abs.startsWith(prefix) || !existsSync(reserve)) continue;
    rmSync(reserve, { force: true });
    return true;
  }
  return false;
}
