/**
 * Moving a private area between upper/ and an XFS image, or into a smaller image: each copies into
 * a new place first, then renames (the old one aside, the new one into place), so a SIGKILL at any
 * point is finished or undone by recoverArea() (see xfs-loop.ts).
 */
import { readdir, rename, rm, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { formatMemory } from '../../api/quantity.js';
import { exists } from '../../util/exists.js';
import { filesBytes, fitsIn } from './xfs-fit.js';
import type { DiskArea, DiskResult } from './driver.js';
import { areaUsage, checkSpace, files, isEmptyDir, makeLayerDirs, mib } from './area-files.js';
import { copyOwnership, copyTree, makeXfsImage, mountImage, unmountImage, writeFsMeta } from './xfs-image.js';

/** Finishes or undoes a move or shrink an earlier (killed) call left half done. */
export async function recoverArea(area: DiskArea): Promise<void> {
  const f = files(area.dir);
  // The usual start (no image, no move left half done): one listing instead of ~15 checks and
  // removals, each a thread-pool round trip of the loop (~0.7 ms per start at concurrency 8).
  const names = await readdir(area.dir).catch(() => undefined);
  const left = [f.img, f.newImg, f.newMnt, f.oldImg, f.newUpper, f.oldUpper].map((p) => path.basename(p));
  if (names && !names.some((n) => left.includes(n))) return;
  if (await exists(f.newMnt)) await unmountImage(f.newMnt);
  const has = async (p: string) => exists(p);
  // An empty upper/ is no data: create() makes one for a container without a limit, also over
  // a private area that is still in its image or half way through a move.
  if (!(await has(f.img)) && (await isEmptyDir(f.upper))) {
    // The old one was set aside after the copy completed: the new one is whole.
    if ((await has(f.newImg)) && ((await has(f.oldImg)) || (await has(f.oldUpper)))) {
      await rm(f.upper, { recursive: true, force: true });
      await rename(f.newImg, f.img);
    } else if ((await has(f.newUpper)) && (await has(f.oldImg))) {
      await rm(f.upper, { recursive: true, force: true });
      await rename(f.newUpper, f.upper);
    }
  }
  if ((await has(f.img)) && (await has(f.upper))) {
    // create() of a replace makes an empty upper/ beside the image: not data.
    if (await isEmptyDir(f.upper)) {
      await rmdir(f.upper);
      await rm(f.work, { recursive: true, force: true });
    } else {
      throw new Error(
        `${area.key}: both ${f.img} and a non-empty ${f.upper} exist; acetate does not know which holds the private area and leaves both (remove the stale one by hand)`,
      );
    }
  }
  // Whatever is left of a copy is incomplete (or already superseded): the data is in img or upper.
  await rm(f.newImg, { force: true });
  await rm(f.oldImg, { force: true });
  await rm(f.newUpper, { recursive: true, force: true });
  await rm(f.oldUpper, { recursive: true, force: true });
  await rm(f.newMnt, { recursive: true, force: true }); // unmounted above: an empty dir
}

/** A new image at `bytes`, mounted on disk.new/, owned like the container's dir. */
async function newImage(area: DiskArea, bytes: number): Promise<void> {
  const f = files(area.dir);
  await makeXfsImage(f.newImg, bytes);
  await mountImage(f.newImg, f.newMnt);
  await writeFsMeta(f.newMnt, bytes);
  await copyOwnership(area.dir, f.newMnt);
}

/** No limit before (or a new container): the private area moves into a new image. */
export async function moveIn(area: DiskArea, bytes: number): Promise<void> {
  const f = files(area.dir);
  await checkSpace(area, bytes, bytes);
  if (await isEmptyDir(f.upper)) {
    // Nothing to copy (a new container): format, take the name (a half-formatted image never
    // has it), mount once.
    await makeXfsImage(f.newImg, bytes);
    await rename(f.newImg, f.img);
    await rm(f.upper, { recursive: true, force: true });
    await rm(f.work, { recursive: true, force: true });
    await mountImage(f.img, f.mnt);
    await writeFsMeta(f.mnt, bytes);
    await copyOwnership(area.dir, f.mnt);
    await makeLayerDirs(f.mnt);
    return;
  }
  await newImage(area, bytes);
  let copied = false;
  try {
    if (!(await isEmptyDir(f.upper)) && (await copyTree(f.upper, `${f.newMnt}/upper`)) === 'nospace') {
      throw new Error(
        `${area.key}: the private area does not fit in a disk of ${formatMemory(bytes)}: it keeps no limit (raise resources.disk or free space in the container)`,
      );
    }
    copied = true;
  } finally {
    await unmountImage(f.newMnt);
    if (!copied) await rm(f.newImg, { force: true });
  }
  if (await exists(f.upper)) await rename(f.upper, f.oldUpper);
  await rename(f.newImg, f.img);
  await rm(f.oldUpper, { recursive: true, force: true });
  await rm(f.work, { recursive: true, force: true });
  await rm(f.newMnt, { recursive: true, force: true });
  await mountImage(f.img, f.mnt);
  await makeLayerDirs(f.mnt);
}

/** The limit was removed: the private area moves out of its image into upper/. */
export async function moveOut(area: DiskArea): Promise<void> {
  const f = files(area.dir);
  await mountImage(f.img, f.mnt);
  try {
    if ((await exists(`${f.mnt}/upper`)) && (await copyTree(`${f.mnt}/upper`, f.newUpper)) === 'nospace') {
      throw new Error(`${area.key}: no space on the state dir's filesystem to move the private area out of its image`);
    }
  } finally {
    await unmountImage(f.mnt);
  }
  await rename(f.img, f.oldImg);
  if (await exists(f.newUpper)) await rename(f.newUpper, f.upper);
  await rm(f.oldImg, { force: true });
  await rm(f.mnt, { recursive: true, force: true }); // the unmounted mount point: an empty dir
  await makeLayerDirs(area.dir);
}

/** Copies the private area into a smaller image; keeps the current one if the data does not fit. */
export async function shrink(area: DiskArea, current: number, bytes: number): Promise<DiskResult> {
  const f = files(area.dir);
  const keep = (why: string): DiskResult => ({
    sizeBytes: current,
    deferred: {
      resource: 'disk',
      infeasible: true,
      reason: `${why} does not fit in ${formatMemory(bytes)}; the disk stays ${formatMemory(current)} (free space in the container first)`,
    },
  });
  const u = await areaUsage(area);
  if (u && !fitsIn(u, bytes)) return keep(`${mib(filesBytes(u))} of files in use`);
  await newImage(area, bytes);
  let result: 'ok' | 'nospace' = 'ok';
  try {
    if (await exists(`${f.mnt}/upper`)) result = await copyTree(`${f.mnt}/upper`, `${f.newMnt}/upper`);
  } finally {
    await unmountImage(f.newMnt);
    if (result !== 'ok') await rm(f.newImg, { force: true });
  }
  if (result === 'nospace') {
    await rm(f.newMnt, { recursive: true, force: true });
    return keep(`the private area (${u ? mib(filesBytes(u)) : '?'} of files in use)`);
  }
  await unmountImage(f.mnt);
  await rename(f.img, f.oldImg);
  await rename(f.newImg, f.img);
  await rm(f.oldImg, { force: true });
  await rm(f.newMnt, { recursive: true, force: true });
  await mountImage(f.img, f.mnt);
  return {};
}
