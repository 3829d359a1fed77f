/**
 * What the plan says about a change of resources.disk on a running container. Pure. A larger disk
 * is grown live; a smaller one cannot be (XFS does not shrink), so it is Deferred to the next
 * restart, where the private area is copied into a smaller image, or Infeasible when the data in
 * use would not fit (the size then stays). Adding or removing the limit moves the private area at
 * the next restart too.
 */
import { formatMemory } from '../api/quantity.js';
import type { ActualContainer } from '../runtime/runtime.js';
// What fits in an XFS of a size: one rule, shared with the runtime's disk driver that does the copy.
import { filesBytes, fitsIn } from '../runtime/disk/xfs-fit.js';

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
