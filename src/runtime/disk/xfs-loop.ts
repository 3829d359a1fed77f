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
 * non-empty `upper/` exists, and a SIGKILL at any point is finished (or undone) by recoverArea() (area-moves.ts): no
 * data is lost, nothing stays mounted or attached.
 */
import path from 'node:path';
import { formatMemory } from '../../api/quantity.js';
import { exists } from '../../util/exists.js';
import { findBinary } from '../../util/find-binary.js';
import { readMountInfo } from '../../util/mounts.js';
import { RuntimeUnavailableError, type DiskUsage } from '../runtime.js';
import { filesBytes, fitsIn } from './xfs-fit.js';
import type { DiskArea, DiskDriver, DiskResult, OverlayLayers } from './driver.js';
import { areaUsage, checkSpace, currentSize, files, makeLayerDirs, mib } from './area-files.js';
import { moveIn, moveOut, recoverArea, shrink } from './area-moves.js';
import { ensureReserve } from './room-reserve.js';
import { allocate, backfillFsMeta, detachLoop, growImage, imageSize, listLoopDevices, mountImage, unmountImage } from './xfs-image.js';

export class XfsLoopDriver implements DiskDriver {
  readonly name = 'xfs-loop';

  async preflight(): Promise<void> {
    for (const tool of ['mkfs.xfs', 'xfs_growfs', 'losetup']) {
      if (!(await findBinary(tool)))
        throw new RuntimeUnavailableError(`${tool} not found (needed for resources.disk): install it with \`apt-get install -y xfsprogs util-linux\``);
    }
  }

  layers(area: DiskArea, limited: boolean): OverlayLayers {
    const f = files(area.dir);
    return limited ? { upper: `${f.mnt}/upper`, work: `${f.mnt}/work` } : { upper: f.upper, work: f.work };
  }

  usage(area: DiskArea): Promise<DiskUsage | undefined> {
    return areaUsage(area);
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
      const current = file === undefined ? undefined : await currentSize(area);
      const what =
        sizeBytes === undefined
          ? 'removing the disk limit moves the private area out of its image'
          : `a disk limit of ${formatMemory(sizeBytes)} moves the private area into an image`;
      return { sizeBytes: current, deferred: { resource: 'disk', reason: `${what}: done at the next restart (resizePolicy RestartContainer does it now)` } };
    }
    await mountImage(f.img, f.mnt); // normally mounted already; after a manual umount, again
    const current = await currentSize(area);
    if (sizeBytes === current) return { sizeBytes };
    if (sizeBytes > current) {
      await checkSpace(area, sizeBytes - current, sizeBytes);
      await growImage(f.img, f.mnt, sizeBytes);
      return { sizeBytes };
    }
    const u = await this.usage(area);
    if (u && !fitsIn(u, sizeBytes)) {
      return {
        sizeBytes: current,
        deferred: {
          resource: 'disk',
          infeasible: true,
          reason: `${mib(filesBytes(u))} of files in use does not fit in ${formatMemory(sizeBytes)}; the disk stays ${formatMemory(current)} (free space in the container first)`,
        },
      };
    }
    return {
      sizeBytes: current,
      deferred: {
        resource: 'disk',
        reason: `XFS cannot shrink while mounted: ${formatMemory(current)} → ${formatMemory(sizeBytes)} is done at the next restart by copying the private area (${u ? `${mib(filesBytes(u))} of files` : 'its data'}) into a new image`,
      },
    };
  }

  async prepare(area: DiskArea, sizeBytes: number | undefined): Promise<DiskResult> {
    const f = files(area.dir);
    await recoverArea(area);
    if (sizeBytes === undefined) {
      if (await exists(f.img)) await moveOut(area);
      return {};
    }
    if (!(await exists(f.img))) {
      await moveIn(area, sizeBytes);
      await ensureReserve(f.mnt);
      return { sizeBytes };
    }
    await mountImage(f.img, f.mnt);
    await backfillFsMeta(f.mnt); // made by an earlier acetate: its metadata measured once, while nothing writes
    const current = await currentSize(area);
    // An image made sparse (thin, or by an acetate before full provisioning) is taken whole at its
    // start, where the node has the room; where it has not, the container still starts as it ran
    // before (refusing would take down a service that ran): the next grow is refused instead.
    await allocate(f.img, (await imageSize(f.img)) ?? current).catch(() => undefined);
    if (sizeBytes > current) {
      await checkSpace(area, sizeBytes - current, sizeBytes);
      await growImage(f.img, f.mnt, sizeBytes);
    } else if (sizeBytes < current) {
      const r = await shrink(area, current, sizeBytes);
      if (r.deferred) return r;
    }
    await makeLayerDirs(f.mnt);
    await ensureReserve(f.mnt);
    return { sizeBytes };
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
