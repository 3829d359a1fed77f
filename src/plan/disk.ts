/**
 * What the plan says about a change of resources.disk on a running container. Pure. A larger disk
 * is grown live; a smaller one cannot be (XFS does not shrink), so it is Deferred to the next
 * restart, where the private area is copied into a smaller image, or Infeasible when the data in
 * use would not fit (the size then stays). Adding or removing the limit moves the private area at
 * the next restart too.
 */
import { formatMemory } from '../api/quantity.js';
import type { ActualContainer, DiskUsage } from '../runtime/runtime.js';

const MI = 2 ** 20;

/**
 * What a fresh XFS of `size` bytes keeps for itself, made as acetate makes it (mkfs.xfs defaults),
 * rounded up: its internal log (the minimum, 1368 blocks, below 300 MB; at least 64 MiB, or
 * 1/2048 of the size, above), the kernel's reserved pool (5% of the blocks, at most 8192), and
 * the per-AG metadata reservations and headers (about 0.7% of the size; 1% taken), plus 2 MiB.
 * Measured with xfsprogs 6.1 on kernel 6.18 (docs/disk.md has the table): 16Mi keeps 5.3 MiB,
 * 64Mi 9.2, 256Mi 20.1, 1Gi 103, 10Gi 167; this estimate is above each.
 */
export function xfsOverheadBytes(size: number): number {
  const log = size < 300e6 ? 1368 * 4096 : Math.min(2 * 1024 * MI, Math.max(64 * MI, size / 2048));
  const reserved = Math.min(0.05 * size, 8192 * 4096);
  return Math.ceil(log + reserved + 0.01 * size + 2 * MI);
}

/** What the container's files take on its disk: statfs's use without XFS's own metadata (see DiskUsage). */
export function filesBytes(u: DiskUsage): number {
  return u.filesBytes ?? u.usedBytes;
}

/**
 * Whether the files in use fit in a NEW filesystem of `target` bytes, which is what a shrink
 * makes (the private area is copied into it): XFS's metadata of the current filesystem does not
 * move (after a grow 16Mi → 40Gi it is 440 MiB); the new one's own is estimated (xfsOverheadBytes).
 * The copy itself has the last word (it stops at ENOSPC and keeps the current image).
 */
export function fitsIn(u: DiskUsage, target: number): boolean {
  return filesBytes(u) <= target - xfsOverheadBytes(target);
}

const mib = (n: number): string => `${(n / 2 ** 20).toFixed(1).replace(/\.0$/, '')}Mi`;

/** Whether a running container's disk can go from `from` to `to` without a restart. */
export function diskChangeIsLive(from: number | undefined, to: number | undefined): boolean {
  return from !== undefined && to !== undefined && to >= from;
}

/**
 * Whether a shrink cannot be made with the data in use: a restart would not make it either (the
 * copy would not fit and the size stays), so a RestartContainer policy must not restart for it.
 */
export function diskChangeInfeasible(a: ActualContainer, from: number | undefined, to: number | undefined): boolean {
  return from !== undefined && to !== undefined && to < from && a.disk !== undefined && !fitsIn(a.disk, to);
}

/** "Deferred to the next restart (…)" / "Infeasible: …" for a change that is not live; '' when it is. */
export function diskChangeNote(a: ActualContainer, from: number | undefined, to: number | undefined): string {
  if (diskChangeIsLive(from, to)) return '';
  if (from === undefined || to === undefined) {
    return `disk: Deferred to the next restart (the private area moves ${to === undefined ? 'out of' : 'into'} its own filesystem)`;
  }
  const u = a.disk;
  if (u && diskChangeInfeasible(a, from, to)) {
    return `disk: Infeasible: ${mib(filesBytes(u))} of files in use does not fit in ${formatMemory(to)}; the disk stays ${formatMemory(from)}`;
  }
  return `disk: Deferred to the next restart (XFS cannot shrink while mounted; the private area${u ? `, ${mib(filesBytes(u))} of files in use,` : ''} is copied into a new image then)`;
}
