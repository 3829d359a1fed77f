/**
 * Whether a container's files fit in an XFS of a given size: what the plan says of a smaller
 * resources.disk (plan/disk.ts) and what the disk driver checks before it copies the private area
 * into a smaller image (area-moves.ts, xfs-loop.ts). Pure; here, below both, so the runtime does
 * not import the plan.
 */
import type { DiskUsage } from '../runtime.js';

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
