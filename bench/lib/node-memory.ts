/**
 * What containers cost the node's memory: the kernel's share from /proc/meminfo (slab, kernel
 * stacks, page tables, per-cpu areas: namespaces, cgroups, keyrings, dentries all land there), and
 * the processes' share as PSS (shared pages divided among their users) summed over every process
 * in a cgroup parent (a container's processes; with acetate, its conmons too, which live in
 * <parent>/conmon).
 */
import { readdir, readFile } from 'node:fs/promises';

export interface KernelMemory {
  slabBytes: number;
  kernelStackBytes: number;
  pageTablesBytes: number;
  percpuBytes: number;
  memAvailableBytes: number;
}

const FIELDS: Record<keyof KernelMemory, string> = {
  slabBytes: 'Slab',
  kernelStackBytes: 'KernelStack',
  pageTablesBytes: 'PageTables',
  percpuBytes: 'Percpu',
  memAvailableBytes: 'MemAvailable',
};

export async function kernelMemory(): Promise<KernelMemory> {
  const text = await readFile('/proc/meminfo', 'utf8');
  const out = {} as KernelMemory;
  for (const [k, field] of Object.entries(FIELDS) as [keyof KernelMemory, string][]) {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
    out[k] = m ? Number(m[1]) * 1024 : NaN;
  }
  return out;
}

/** after - before, field by field. */
export function kernelGrowth(before: KernelMemory, after: KernelMemory): KernelMemory {
  const out = {} as KernelMemory;
  for (const k of Object.keys(FIELDS) as (keyof KernelMemory)[]) out[k] = after[k] - before[k];
  return out;
}

/** Slab + KernelStack + PageTables + Percpu. */
export const kernelTotal = (k: KernelMemory): number => k.slabBytes + k.kernelStackBytes + k.pageTablesBytes + k.percpuBytes;

export interface ProcessMemory {
  /** Processes found in the cgroup parent. */
  processes: number;
  /** Summed PSS of those whose command is conmon (acetate's supervisors). */
  conmonPssBytes: number;
  conmons: number;
  /** Summed PSS of the others (the containers' own processes: init and the command). */
  containerPssBytes: number;
  /** Their threads (each a task under kernel.pid_max) and open fds, summed. */
  threads: number;
  fds: number;
}

/**
 * PSS of every process in a cgroup under /<parent>/ in any hierarchy (one pass over /proc): the
 * containers' processes are in their own cgroups everywhere, acetate's conmons only in the
 * hierarchies systemd tracks (<parent>/conmon, see conmon-cgroup.ts).
 */
export async function processMemoryUnder(parent: string): Promise<ProcessMemory> {
  const prefix = `:/${parent.replace(/^\/+/, '')}/`;
  const out: ProcessMemory = { processes: 0, conmonPssBytes: 0, conmons: 0, containerPssBytes: 0, threads: 0, fds: 0 };
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const cg = await readFile(`/proc/${e}/cgroup`, 'utf8').catch(() => '');
    if (!cg.includes(prefix)) continue;
    const rollup = await readFile(`/proc/${e}/smaps_rollup`, 'utf8').catch(() => '');
    const m = /^Pss:\s+(\d+) kB/m.exec(rollup);
    if (!m) continue; // a kernel thread, or gone meanwhile
    const pss = Number(m[1]) * 1024;
    const exe = (await readFile(`/proc/${e}/cmdline`, 'utf8').catch(() => '')).split('\0')[0] ?? '';
    out.processes++;
    out.threads += Number(/^Threads:\s+(\d+)/m.exec(await readFile(`/proc/${e}/status`, 'utf8').catch(() => ''))?.[1] ?? 0);
    out.fds += (await readdir(`/proc/${e}/fd`).catch(() => [])).length;
    if (exe.endsWith('conmon')) {
      out.conmons++;
      out.conmonPssBytes += pss;
    } else out.containerPssBytes += pss;
  }
  return out;
}
