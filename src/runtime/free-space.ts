/**
 * A floor of free space on the state dir's filesystem below which acetate makes nothing new:
 * pulls and creates are refused (and retried with back-off), as the kubelet stops admitting pods
 * under disk pressure, so a node filling up is not filled further by acetate itself. What already
 * runs is never touched for it. ACETATE_MIN_FREE sets it (a quantity such as 2Gi; 0 turns it off);
 * the default is small, 256Mi, because this only guards the last of the disk: an admin sizes it.
 */
import { statfsSync } from 'node:fs';
import { formatMemory, parseMemory } from '../api/quantity.js';

export const DEFAULT_MIN_FREE = 256 * 2 ** 20;

export class NodeDiskPressureError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NodeDiskPressureError';
  }
}

export function minFreeBytes(env: NodeJS.ProcessEnv = process.env): number {
  const v = env.ACETATE_MIN_FREE;
  if (v === undefined || v === '') return DEFAULT_MIN_FREE;
  try {
    return parseMemory(v);
  } catch (err) {
    throw new NodeDiskPressureError(
      `ACETATE_MIN_FREE=${JSON.stringify(v.slice(0, 40))} is not a quantity such as 2Gi (${err instanceof Error ? err.message : String(err)})`,
    );
  }
}

/**
 * Refuses `what` (a pull, a create, a grow) when the filesystem of `dir` would have less than the
 * floor free after it: `takes` is what it allocates at once (a disk image allocated whole).
 */
export function checkFreeSpace(dir: string, what: string, takes = 0, env: NodeJS.ProcessEnv = process.env): void {
  const floor = minFreeBytes(env);
  if (floor === 0) return;
  const s = statfsSync(dir);
  const free = s.bavail * s.bsize;
  if (free - takes < floor) {
    const mi = (n: number): string => `${(n / 2 ** 20).toFixed(1)}Mi`;
    throw new NodeDiskPressureError(
      `${what} refused: the state dir's filesystem has ${mi(free)} free${takes ? `, ${mi(takes)} of it for this disk` : ''}, leaving less than the ${formatMemory(floor)} kept free on the node (ACETATE_MIN_FREE); free space first`,
    );
  }
}
