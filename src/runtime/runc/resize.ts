/**
 * Resizing a running container in place with `runc update`. cpu and pids go first, in their own
 * call: runc applies memory before them, so a refused memory change would otherwise block them.
 * A memory decrease the kernel refuses (usage above the new limit, EBUSY) is deferred, not thrown.
 */
import type { Resources } from '../../api/types.js';
import type { DeferredResize } from '../runtime.js';
import { readLimits, readMemoryUsage, sameMemory, type CgroupLocation } from './cgroups.js';
import { CPU_PERIOD_US, cpuAndPidsUpdateFlags, cpuQuotaOf, memoryUpdateFlags } from './resources.js';
import { RuncError, type RuncCli } from './runc-cli.js';

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

export async function resizeInPlace(i: ResizeInput): Promise<ResizeOutcome> {
  const before = await readLimits(i.cgroup);
  const { wanted } = i;
  const wantCpu = wanted.cpuMillis === undefined ? undefined : Math.round((cpuQuotaOf(wanted.cpuMillis) * 1000) / CPU_PERIOD_US);
  if (before.cpuMillis !== wantCpu || before.pids !== wanted.pids) {
    await i.runc.update(i.id, cpuAndPidsUpdateFlags(wanted));
  }
  const deferred: DeferredResize[] = [];
  const applied: Resources = { ...wanted };
  if (!sameMemory(before.memoryBytes, wanted.memoryBytes)) {
    try {
      await i.runc.update(i.id, memoryUpdateFlags(wanted.memoryBytes, { swapAccounting: i.swapAccounting }));
    } catch (err) {
      if (!(err instanceof RuncError) || !isMemoryBusy(err.runcMessage)) throw err;
      const m = /current usage: (\d+)/.exec(err.runcMessage);
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
