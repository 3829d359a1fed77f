/**
 * The XFS-on-loop disk driver (see driver.ts). In a container's dir:
 *
 *   disk.img       the private area's filesystem: a sparse image formatted XFS
 *   disk/          where it is mounted on the node (private mount); disk/upper, disk/work are
 *                  the overlay's upper and work dirs. runc mounts the overlay itself inside the
 *                  container's mount namespace, as without a disk limit.
 *   upper/ work/   the private area of a container without a disk limit
 *
 * Moving data between them (a limit added or removed, a shrink) copies into a new place first
 * (`disk.img.new` mounted on `disk.new/`, or `upper.new/`), then renames: first the old one aside
 * (`*.old`), then the new one into place. So at any moment at most one of `disk.img` and a
 * non-empty `upper/` exists, and a SIGKILL at any point is finished (or undone) by recover(): no
 * data is lost, nothing stays mounted or attached.
 */
import { mkdir, readdir, rename, rm, rmdir, statfs } from 'node:fs/promises';
import path from 'node:path';
import { formatMemory } from '../../api/quantity.js';
import { exists } from '../../util/exists.js';
import { findBinary } from '../../util/find-binary.js';
import { readMountInfo } from '../runc/mounts.js';
import { RuntimeUnavailableError, type DiskUsage } from '../runtime.js';
import { fitsIn } from '../../plan/disk.js';
import { DiskLimitError, type DiskArea, type DiskDriver, type DiskResult, type OverlayLayers } from './driver.js';
import { copyOwnership, copyTree, detachLoop, fsSize, fsUsage, growImage, imageSize, isMountPoint, listLoopDevices, makeXfsImage, mountImage, unmountImage, writeFsMeta } from './xfs-image.js';

interface AreaFiles {
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

function files(dir: string): AreaFiles {
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

async function isEmptyDir(p: string): Promise<boolean> {
  try {
    return (await readdir(p)).length === 0;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw err;
  }
}

const mib = (n: number): string => `${(n / 2 ** 20).toFixed(1).replace(/\.0$/, '')}Mi`;

/**
 * Refuses an image that could not be filled: growing it by `growBy` must fit in the free space of
 * the state dir's filesystem now. Images are sparse, so several containers together may still
 * promise more than is free (thin provisioning, as ploop and LVM thin pools allow); a full state
 * dir then shows as I/O errors inside the containers that write, which is the admin's to avoid.
 */
async function checkSpace(area: DiskArea, growBy: number, total: number): Promise<void> {
  const s = await statfs(area.dir);
  const free = s.bavail * s.bsize;
  if (growBy > free) {
    throw new DiskLimitError(`${formatMemory(total)} is more than the state dir's filesystem can hold: it needs ${mib(growBy)} more and ${mib(free)} is free under ${path.dirname(path.dirname(area.dir))}; refused`);
  }
}

export class XfsLoopDriver implements DiskDriver {
  readonly name = 'xfs-loop';
  private checkSpace(area: DiskArea, growBy: number, total: number): Promise<void> {
    return checkSpace(area, growBy, total);
  }

  async preflight(): Promise<void> {
    for (const tool of ['mkfs.xfs', 'xfs_growfs', 'losetup']) {
      if (!(await findBinary(tool))) throw new RuntimeUnavailableError(`${tool} not found (needed for resources.disk): install it with \`apt-get install -y xfsprogs util-linux\``);
    }
  }

  layers(area: DiskArea, limited: boolean): OverlayLayers {
    const f = files(area.dir);
    return limited ? { upper: `${f.mnt}/upper`, work: `${f.mnt}/work` } : { upper: f.upper, work: f.work };
  }

  async usage(area: DiskArea): Promise<DiskUsage | undefined> {
    const f = files(area.dir);
    const file = await imageSize(f.img);
    if (file === undefined || !(await isMountPoint(f.mnt, area.dir))) return undefined;
    const u = await fsUsage(f.mnt);
    return { sizeBytes: (await fsSize(f.mnt)) ?? file, totalBytes: u.totalBytes, usedBytes: u.usedBytes };
  }

  /** The size in force of an attached image: its filesystem's (see fsSize). */
  private async current(area: DiskArea): Promise<number> {
    const f = files(area.dir);
    return (await fsSize(f.mnt)) ?? (await imageSize(f.img))!;
  }

  async release(area: DiskArea): Promise<void> {
    const f = files(area.dir);
    await unmountImage(f.newMnt);
    await unmountImage(f.mnt);
  }

  async resizeLive(area: DiskArea, sizeBytes: number | undefined): Promise<DiskResult> {
    const f = files(area.dir);
    const file = await imageSize(f.img);
    if (file === undefined && sizeBytes === undefined) return {};
    if (file === undefined || sizeBytes === undefined) {
      const current = file === undefined ? undefined : await this.current(area);
      const what = sizeBytes === undefined ? 'removing the disk limit moves the private area out of its image' : `a disk limit of ${formatMemory(sizeBytes)} moves the private area into an image`;
      return { sizeBytes: current, deferred: { resource: 'disk', reason: `${what}: done at the next restart (resizePolicy RestartContainer does it now)` } };
    }
    await mountImage(f.img, f.mnt); // normally mounted already; after a manual umount, again
    const current = await this.current(area);
    if (sizeBytes === current) return { sizeBytes };
    if (sizeBytes > current) {
      await this.checkSpace(area, sizeBytes - current, sizeBytes);
      await growImage(f.img, f.mnt, sizeBytes);
      return { sizeBytes };
    }
    const u = await this.usage(area);
    if (u && !fitsIn(u, sizeBytes)) {
      return { sizeBytes: current, deferred: { resource: 'disk', infeasible: true, reason: `${mib(u.usedBytes)} in use does not fit in ${formatMemory(sizeBytes)}; the disk stays ${formatMemory(current)} (free space in the container first)` } };
    }
    return {
      sizeBytes: current,
      deferred: { resource: 'disk', reason: `XFS cannot shrink while mounted: ${formatMemory(current)} → ${formatMemory(sizeBytes)} is done at the next restart by copying the private area (${u ? mib(u.usedBytes) : 'its data'}) into a new image` },
    };
  }

  async prepare(area: DiskArea, sizeBytes: number | undefined): Promise<DiskResult> {
    const f = files(area.dir);
    await this.recover(area);
    if (sizeBytes === undefined) {
      if (await exists(f.img)) await this.moveOut(area);
      return {};
    }
    if (!(await exists(f.img))) {
      await this.moveIn(area, sizeBytes);
      return { sizeBytes };
    }
    await mountImage(f.img, f.mnt);
    const current = await this.current(area);
    if (sizeBytes > current) {
      await this.checkSpace(area, sizeBytes - current, sizeBytes);
      await growImage(f.img, f.mnt, sizeBytes);
    } else if (sizeBytes < current) {
      const r = await this.shrink(area, current, sizeBytes);
      if (r.deferred) return r;
    }
    await makeLayerDirs(f.mnt);
    return { sizeBytes };
  }

  /** Finishes or undoes a move or shrink an earlier (killed) call left half done. */
  private async recover(area: DiskArea): Promise<void> {
    const f = files(area.dir);
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
        throw new Error(`${area.key}: both ${f.img} and a non-empty ${f.upper} exist; acetate does not know which holds the private area and leaves both (remove the stale one by hand)`);
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
  private async newImage(area: DiskArea, bytes: number): Promise<void> {
    const f = files(area.dir);
    await makeXfsImage(f.newImg, bytes);
    await mountImage(f.newImg, f.newMnt);
    await writeFsMeta(f.newMnt, bytes);
    await copyOwnership(area.dir, f.newMnt);
  }

  /** No limit before (or a new container): the private area moves into a new image. */
  private async moveIn(area: DiskArea, bytes: number): Promise<void> {
    const f = files(area.dir);
    await this.checkSpace(area, bytes, bytes);
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
    await this.newImage(area, bytes);
    let copied = false;
    try {
      if (!(await isEmptyDir(f.upper)) && (await copyTree(f.upper, `${f.newMnt}/upper`)) === 'nospace') {
        throw new Error(`${area.key}: the private area does not fit in a disk of ${formatMemory(bytes)}: it keeps no limit (raise resources.disk or free space in the container)`);
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
  private async moveOut(area: DiskArea): Promise<void> {
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
  private async shrink(area: DiskArea, current: number, bytes: number): Promise<DiskResult> {
    const f = files(area.dir);
    const keep = (why: string): DiskResult => ({
      sizeBytes: current,
      deferred: { resource: 'disk', infeasible: true, reason: `${why} does not fit in ${formatMemory(bytes)}; the disk stays ${formatMemory(current)} (free space in the container first)` },
    });
    const u = await this.usage(area);
    if (u && !fitsIn(u, bytes)) return keep(`${mib(u.usedBytes)} in use`);
    await this.newImage(area, bytes);
    let result: 'ok' | 'nospace' = 'ok';
    try {
      if (await exists(`${f.mnt}/upper`)) result = await copyTree(`${f.mnt}/upper`, `${f.newMnt}/upper`);
    } finally {
      await unmountImage(f.newMnt);
      if (result !== 'ok') await rm(f.newImg, { force: true });
    }
    if (result === 'nospace') {
      await rm(f.newMnt, { recursive: true, force: true });
      return keep(`the private area (${u ? mib(u.usedBytes) : '?'} in use)`);
    }
    await unmountImage(f.mnt);
    await rename(f.img, f.oldImg);
    await rename(f.newImg, f.img);
    await rm(f.oldImg, { force: true });
    await rm(f.newMnt, { recursive: true, force: true });
    await mountImage(f.img, f.mnt);
    return {};
  }

  async sweep(containersDir: string): Promise<void> {
    const base = `${path.resolve(containersDir)}/`;
    const mounts = await readMountInfo().catch(() => []);
    // Mounts of images whose container is gone (no record), or of a copy that was interrupted.
    for (const m of mounts) {
      if (!m.mountPoint.startsWith(base) || m.fsType !== 'xfs') continue;
      const [id, leaf, ...rest] = m.mountPoint.slice(base.length).split('/');
      if (!id || rest.length || (leaf !== 'disk' && leaf !== 'disk.new')) continue;
      const dead = id.startsWith('.') || !(await exists(`${base}${id}/record.json`));
      if (dead || leaf === 'disk.new') await unmountImage(m.mountPoint);
    }
    // Loop devices backed by an image under the containers dir that nothing mounts here (mount -o
    // loop killed half way, a device attached by hand): detached, or autoclear when still busy.
    const sources = new Set((await readMountInfo().catch(() => [])).map((m) => m.source));
    for (const d of await listLoopDevices().catch(() => [])) {
      if (d.backFile.startsWith(base) && !sources.has(d.name)) await detachLoop(d.name);
    }
  }
}

async function makeLayerDirs(root: string): Promise<void> {
  await mkdir(`${root}/upper`, { recursive: true });
  await mkdir(`${root}/work`, { recursive: true });
}
