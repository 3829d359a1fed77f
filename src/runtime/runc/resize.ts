/**
 * Resizing a running container in place with `runc update`. cpu and pids go first, in their own
 * call: runc applies memory before them, so a refused memory change would otherwise block them.
 * A memory decrease the kernel refuses (usage above the new limit, EBUSY) is deferred, not thrown.
 *
 * On cgroup v1 each limit is first written into the cgroup's own files (cgroup-v1-write.ts: in force
 * in a millisecond, not after runc's ~250 ms), then `runc update` with the same values keeps runc's
 * state.json in step, so that no later `runc update` puts the old value back.
 */
import type { Resources } from '../../api/types.js';
import type { DeferredResize } from '../runtime.js';
import { detectCgroupMode, readLimits, readMemoryUsage, sameMemory, type CgroupLocation } from './cgroups.js';
import { CPU_PERIOD_US, cpuAndPidsUpdateFlags, cpuQuotaOf, memoryUpdateFlags } from './resources.js';
import { RuncError, type RuncCli } from './runc-cli.js';
import { isBusy, writeCpuAndPidsV1, writeMemoryV1 } from './cgroup-v1-write.js';

export interface ResizeInput {
  runc: RuncCli;
  id: string;
  cgroup: CgroupLocation;
  /** The limits wanted. */
  wanted: Resources;
  /** The limits the record says are in force (kept for what gets deferred). */
  inForce: Resources;
  swapAccounting: boolean;
}

export interface ResizeOutcome {
  /** Read back from the cgroup after the update. */
  limits: Resources;
  deferred: DeferredResize[];
  /** What is now in force, to record as applied: `wanted` except for what was deferred. */
  applied: Resources;
}

function formatBytes(n: number): string {
  return n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1).replace(/\.0$/, '')}Mi` : `${n} bytes`;
}

/** runc's message when the kernel refuses a memory limit below the usage (EBUSY). */
export function isMemoryBusy(message: string): boolean {
  return /unable to set memory limit|device or resource busy|EBUSY/i.test(message);
}

/**
 * runc update failed after the limit was written directly: the old value is written back (best
 * effort), so that a failed resize leaves the limit, runc's state and acetate's record as they were
 * (reported, retried: docs/reliability.md). Rethrows runc's error.
 */
function putBack(direct: boolean, err: unknown, restore: () => void): never {
  if (direct) {
    try {
      restore();
    } catch {
      // best effort: the error reported is runc's
    }
  }
  throw err;
}

export async function resizeInPlace(i: ResizeInput): Promise<ResizeOutcome> {
  const before = await readLimits(i.cgroup);
  const { wanted } = i;
  const wantCpu = wanted.cpuMillis === undefined ? undefined : Math.round((cpuQuotaOf(wanted.cpuMillis) * 1000) / CPU_PERIOD_US);
  const direct = (i.cgroup.mode ?? (await detectCgroupMode(i.cgroup.root))) === 'v1';
  if (before.cpuMillis !== wantCpu || before.pids !== wanted.pids) {
    if (direct) writeCpuAndPidsV1(i.cgroup, wanted);
    await i.runc.update(i.id, cpuAndPidsUpdateFlags(wanted)).catch((err: unknown) => putBack(direct, err, () => writeCpuAndPidsV1(i.cgroup, before)));
  }
  const deferred: DeferredResize[] = [];
  const applied: Resources = { ...wanted };
  if (!sameMemory(before.memoryBytes, wanted.memoryBytes)) {
    try {
      // A refusal here (EBUSY) leaves the files and runc's state as they were: no runc update.
      if (direct) writeMemoryV1(i.cgroup, wanted.memoryBytes, { swapAccounting: i.swapAccounting });
      await i.runc
        .update(i.id, memoryUpdateFlags(wanted.memoryBytes, { swapAccounting: i.swapAccounting }))
        .catch((err: unknown) => putBack(direct, err, () => writeMemoryV1(i.cgroup, before.memoryBytes, { swapAccounting: i.swapAccounting })));
    } catch (err) {
      const busy = isBusy(err) || (err instanceof RuncError && isMemoryBusy(err.runcMessage));
      if (!busy) throw err;
      const m = err instanceof RuncError ? /current usage: (\d+)/.exec(err.runcMessage) : null;
      const usage = m ? Number(m[1]) : await readMemoryUsage(i.cgroup);
      const old = before.memoryBytes === undefined ? 'unlimited' : formatBytes(before.memoryBytes);
      deferred.push({
        resource: 'memory',
        reason: `memory usage ${usage === undefined ? 'unknown' : formatBytes(usage)} is above the new limit ${formatBytes(wanted.memoryBytes ?? 0)}; the kernel refused it (the limit stays ${old})`,
      });
      if (i.inForce.memoryBytes === undefined) delete applied.memoryBytes;
      else applied.memoryBytes = i.inForce.memoryBytes;
    }
  }
  return { limits: await readLimits(i.cgroup), deferred, applied };
}
