/**
 * Where a container's private area lives in its dir (see xfs-loop.ts for the layout and why each
 * name exists), and the small checks the moves between them need.
 */
import { mkdir, readdir, statfs } from 'node:fs/promises';
import path from 'node:path';
import { formatMemory } from '../../api/quantity.js';
import type { DiskUsage } from '../runtime.js';
import { DiskLimitError, type DiskArea } from './driver.js';
import { diskProvisioning, fsSize, fsState, imageSize, isMountPoint } from './xfs-image.js';
import { checkFreeSpace } from '../free-space.js';

export interface AreaFiles {
  img: string;
  mnt: string;
  newImg: string;
  newMnt: string;
  oldImg: string;
  upper: string;
  work: string;
  newUpper: string;
  oldUpper: string;
}

export function files(dir: string): AreaFiles {
  return {
    img: `${dir}/disk.img`,
    mnt: `${dir}/disk`,
    newImg: `${dir}/disk.img.new`,
    newMnt: `${dir}/disk.new`,
    oldImg: `${dir}/disk.img.old`,
    upper: `${dir}/upper`,
    work: `${dir}/work`,
    newUpper: `${dir}/upper.new`,
    oldUpper: `${dir}/upper.old`,
  };
}

export async function isEmptyDir(p: string): Promise<boolean> {
  try {
    return (await readdir(p)).length === 0;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw err;
  }
}

export const mib = (n: number): string => `${(n / 2 ** 20).toFixed(1).replace(/\.0$/, '')}Mi`;

/**
 * Refuses an image that could not be filled: growing it by `growBy` must fit in the free space of
 * the state dir's filesystem now, and, allocated whole (full provisioning, the default), leave the
 * node's free-space floor (ACETATE_MIN_FREE) free after it. Thin images are sparse: several may
 * still promise more than is free, which is the admin's explicit choice (see xfs-image.ts).
 */
export async function checkSpace(area: DiskArea, growBy: number, total: number): Promise<void> {
  const s = await statfs(area.dir);
  const free = s.bavail * s.bsize;
  if (growBy > free) {
    throw new DiskLimitError(
      `${formatMemory(total)} is more than the state dir's filesystem can hold: it needs ${mib(growBy)} more and ${mib(free)} is free under ${path.dirname(path.dirname(area.dir))}; refused`,
    );
  } // Allocated whole: the node's free-space floor must hold after it, as for a create.
  if (diskProvisioning() === 'full') {
    try {
      checkFreeSpace(area.dir, `a disk of ${formatMemory(total)} for ${area.key}`, growBy);
    } catch (err) {
      throw new DiskLimitError(err instanceof Error ? err.message : String(err), { cause: err });
    }
  }
}

/** Size and use of the area's image, when it is attached. */
export async function areaUsage(area: DiskArea): Promise<DiskUsage | undefined> {
  const f = files(area.dir);
  const file = await imageSize(f.img);
  if (file === undefined || !(await isMountPoint(f.mnt, area.dir))) return undefined;
  const u = await fsState(f.mnt);
  return { ...u, sizeBytes: u.sizeBytes ?? file };
}

/** The size in force of an attached image: its filesystem's (see fsSize). */
export async function currentSize(area: DiskArea): Promise<number> {
  const f = files(area.dir);
  return (await fsSize(f.mnt)) ?? (await imageSize(f.img))!;
}

export async function makeLayerDirs(root: string): Promise<void> {
  await mkdir(`${root}/upper`, { recursive: true });
  await mkdir(`${root}/work`, { recursive: true });
}
