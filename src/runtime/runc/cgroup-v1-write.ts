/**
 * A running container's limits written straight into its cgroup v1 files (issue 25: save → new
 * limit in the cgroup). `runc update` takes ~250 ms on this loaded 2-core node (a Go binary started,
 * its state read, every controller's files written again), most of the 500 ms from an atomic save
 * to the new limit; an open and a write take well under a millisecond.
 *
 * runc keeps the limits in its state.json and `runc update` writes all of them from there plus its
 * flags: a limit written here alone would be put back by the next `runc update` of another limit.
 * So resize.ts runs `runc update` with the same values right after (the kernel keeps the limit as
 * it is; runc's state follows): the limit is in force at once, runc's record a moment later.
 *
 * cgroup v2 (one file per limit too, but not testable on this node) goes through `runc update` alone.
 */
import { closeSync, constants, openSync, readFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { Resources } from '../../api/types.js';
import { CPU_PERIOD_US, cpuQuotaOf } from './resources.js';
import { CGROUP_ROOT, parseMemoryLimit, type CgroupLocation } from './cgroups.js';

function dirOf(loc: CgroupLocation, controller: string): string {
  return path.join(loc.root ?? CGROUP_ROOT, controller, loc.cgroupsPath.replace(/^\/+/, ''));
}

/**
 * One write to a cgroup file that exists (O_WRONLY, no create, no truncate: cgroup files take none).
 * Synchronous on purpose: three syscalls on a pseudo-file, where each of the ~10 thread-pool round
 * trips of the asynchronous calls waited for a core on a loaded node (tens of ms in all). A
 * memory limit below the usage makes the kernel reclaim first (bounded retries, then EBUSY).
 */
function writeCgroupFile(file: string, value: string): void {
  const fd = openSync(file, constants.O_WRONLY);
  try {
    writeSync(fd, value);
  } finally {
    closeSync(fd);
  }
}

/** cpu quota and pids limit (an absent one: unlimited), as `runc update --cpu-quota --pids-limit` sets them. */
export function writeCpuAndPidsV1(loc: CgroupLocation, wanted: Resources): void {
  const cpu = dirOf(loc, 'cpu');
  const period = readFileSync(path.join(cpu, 'cpu.cfs_period_us'), 'utf8').trim();
  if (period !== String(CPU_PERIOD_US)) writeCgroupFile(path.join(cpu, 'cpu.cfs_period_us'), String(CPU_PERIOD_US));
  writeCgroupFile(path.join(cpu, 'cpu.cfs_quota_us'), wanted.cpuMillis === undefined ? '-1' : String(cpuQuotaOf(wanted.cpuMillis)));
  writeCgroupFile(path.join(dirOf(loc, 'pids'), 'pids.max'), wanted.pids === undefined ? 'max' : String(wanted.pids));
}

/**
 * The memory limit (and with swap accounting the memory+swap limit, kept equal: no swap), in the
 * order the kernel accepts (memory ≤ memory+swap at every step): raising, memsw first; lowering,
 * memory first. A limit below the usage the kernel cannot reclaim fails with EBUSY, the limit kept.
 */
export function writeMemoryV1(loc: CgroupLocation, memoryBytes: number | undefined, o: { swapAccounting: boolean }): void {
  const dir = dirOf(loc, 'memory');
  const value = memoryBytes === undefined ? '-1' : String(memoryBytes);
  const limit = path.join(dir, 'memory.limit_in_bytes');
  if (!o.swapAccounting) return writeCgroupFile(limit, value);
  const memsw = path.join(dir, 'memory.memsw.limit_in_bytes');
  const current = parseMemoryLimit(readFileSync(memsw, 'utf8'));
  const raising = memoryBytes === undefined || (current !== undefined && memoryBytes > current);
  if (raising) {
    writeCgroupFile(memsw, value);
    writeCgroupFile(limit, value);
  } else {
    writeCgroupFile(limit, value);
    writeCgroupFile(memsw, value);
  }
}

/** The kernel's refusal of a memory limit below what it can reclaim. */
export function isBusy(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'EBUSY';
}
