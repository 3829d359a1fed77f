/**
 * acetate Resources (millicores, bytes, pids) as cgroup settings: the OCI `linux.resources` block
 * written at create time and the `runc update` flags used to resize in place. Pure.
 */
import type { Resources } from '../../api/types.js';

/** CFS period used for every container (µs). */
export const CPU_PERIOD_US = 100_000;
/** The kernel refuses a CFS quota below 1 ms. */
export const MIN_CPU_QUOTA_US = 1_000;

/** CFS quota (µs per 100 ms period) for a number of millicores: 1000m = one full CPU. */
export function cpuQuotaOf(millis: number): number {
  return Math.max(MIN_CPU_QUOTA_US, Math.round((millis * CPU_PERIOD_US) / 1000));
}

export interface OciLinuxResources {
  devices: { allow: boolean; access: string; type?: string; major?: number; minor?: number }[];
  memory?: { limit: number; swap?: number };
  cpu?: { quota: number; period: number };
  pids?: { limit: number };
}

export interface ResourceOptions {
  /** cgroup v1 with memory.memsw: the swap limit (memory + swap) is set to the memory limit, so no swap beyond it. */
  swapAccounting: boolean;
  /** Privileged containers may use every device. */
  privileged?: boolean;
}

export function ociLinuxResources(resources: Resources, opts: ResourceOptions): OciLinuxResources {
  const out: OciLinuxResources = {
    // Deny all; runc adds its default allow-list (null, zero, full, random, urandom, tty, ptmx, pts).
    devices: [{ allow: !!opts.privileged, access: 'rwm' }],
  };
  if (resources.memoryBytes !== undefined) {
    out.memory = { limit: resources.memoryBytes };
    if (opts.swapAccounting) out.memory.swap = resources.memoryBytes;
  }
  if (resources.cpuMillis !== undefined) out.cpu = { quota: cpuQuotaOf(resources.cpuMillis), period: CPU_PERIOD_US };
  if (resources.pids !== undefined) out.pids = { limit: resources.pids };
  return out;
}

/** `runc update` flags setting cpu and pids (an absent limit is removed: -1). */
export function cpuAndPidsUpdateFlags(resources: Resources): string[] {
  const quota = resources.cpuMillis === undefined ? -1 : cpuQuotaOf(resources.cpuMillis);
  const pids = resources.pids === undefined ? -1 : resources.pids;
  return ['--cpu-period', String(CPU_PERIOD_US), '--cpu-quota', String(quota), '--pids-limit', String(pids)];
}

/**
 * `runc update` flags setting memory. On cgroup v1 with swap accounting the memory+swap limit moves
 * with the memory limit (runc orders the two writes so the kernel accepts them).
 */
export function memoryUpdateFlags(memoryBytes: number | undefined, opts: ResourceOptions): string[] {
  const v = memoryBytes === undefined ? '-1' : String(memoryBytes);
  return opts.swapAccounting ? ['--memory', v, '--memory-swap', v] : ['--memory', v];
}
