/**
 * Reading a container's limits back from its cgroup files, and removing cgroup directories that
 * runc left behind. cgroup v1 (also hybrid) is what acetate targets; v2 files are read too.
 *
 * Memory limits are rounded down to the page size by the kernel: a limit read back may be up to
 * 4095 bytes below the one requested. Compare memory with `sameMemory`, never with `===`.
 */
import { readSmallFile } from '../../util/small-file.js';
import { readdirSync, rmdirSync, type Dirent } from 'node:fs';
import path from 'node:path';
import type { Resources } from '../../api/types.js';
import { exists } from '../../util/exists.js';

export const CGROUP_ROOT = '/sys/fs/cgroup';
/** Page size the kernel rounds memory limits to. */
export const MEMORY_GRANULARITY = 4096;

/** True when both are unlimited, or both are set and differ by less than a page. */
export function sameMemory(a: number | undefined, b: number | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return Math.abs(a - b) < MEMORY_GRANULARITY;
}

/** memory.limit_in_bytes (v1; 9223372036854771712 = unlimited) or memory.max (v2; "max"). */
export function parseMemoryLimit(text: string): number | undefined {
  const t = text.trim();
  if (t === 'max' || t === '-1' || t === '') return undefined;
  const v = BigInt(t);
  // Anything that does not fit a safe integer (8 PiB) is the kernel's "no limit".
  if (v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  return Number(v);
}

/** v1 cfs quota/period (quota -1 = unlimited) to millicores. */
export function parseCpuV1(quotaText: string, periodText: string): number | undefined {
  const quota = Number(quotaText.trim());
  const period = Number(periodText.trim());
  if (!Number.isFinite(quota) || quota < 0 || !Number.isFinite(period) || period <= 0) return undefined;
  return Math.round((quota * 1000) / period);
}

/** v2 cpu.max: "max 100000" or "50000 100000". */
export function parseCpuV2(text: string): number | undefined {
  const [q, p] = text.trim().split(/\s+/);
  if (q === undefined || q === 'max') return undefined;
  return parseCpuV1(q, p ?? '100000');
}

/** pids.max: "max" = unlimited. */
export function parsePidsMax(text: string): number | undefined {
  const t = text.trim();
  if (t === 'max' || t === '') return undefined;
  const n = Number(t);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

export type CgroupMode = 'v1' | 'v2';

/** v2 when the root itself is a cgroup2 hierarchy (has cgroup.controllers); hybrid counts as v1. */
export async function detectCgroupMode(root = CGROUP_ROOT): Promise<CgroupMode> {
  return (await exists(path.join(root, 'cgroup.controllers'))) ? 'v2' : 'v1';
}

/** cgroup v1 has memory.memsw.* (swap accounting): the swap limit must then follow the memory limit. */
export async function hasSwapAccounting(root = CGROUP_ROOT): Promise<boolean> {
  return exists(path.join(root, 'memory', 'memory.memsw.limit_in_bytes'));
}

async function readOptional(p: string): Promise<string | undefined> {
  try {
    return await readSmallFile(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read cgroup file ${p}`, { cause: err });
  }
}

export interface CgroupLocation {
  /** Relative to each hierarchy's root, e.g. `/acetate-1a2b3c4d/default_web`. */
  cgroupsPath: string;
  root?: string;
  mode?: CgroupMode;
}

/** The limits in force (absent = unlimited). Empty if the cgroup does not exist. */
export async function readLimits(loc: CgroupLocation): Promise<Resources> {
  const root = loc.root ?? CGROUP_ROOT;
  const mode = loc.mode ?? (await detectCgroupMode(root));
  const rel = loc.cgroupsPath.replace(/^\/+/, '');
  const out: Resources = {};
  if (mode === 'v2') {
    const dir = path.join(root, rel);
    const [mem, cpu, pids] = await Promise.all([
      readOptional(path.join(dir, 'memory.max')),
      readOptional(path.join(dir, 'cpu.max')),
      readOptional(path.join(dir, 'pids.max')),
    ]);
    const memoryBytes = mem === undefined ? undefined : parseMemoryLimit(mem);
    const cpuMillis = cpu === undefined ? undefined : parseCpuV2(cpu);
    const pidsMax = pids === undefined ? undefined : parsePidsMax(pids);
    if (memoryBytes !== undefined) out.memoryBytes = memoryBytes;
    if (cpuMillis !== undefined) out.cpuMillis = cpuMillis;
    if (pidsMax !== undefined) out.pids = pidsMax;
    return out;
  }
  const [mem, quota, pids] = await Promise.all([
    readOptional(path.join(root, 'memory', rel, 'memory.limit_in_bytes')),
    readOptional(path.join(root, 'cpu', rel, 'cpu.cfs_quota_us')),
    readOptional(path.join(root, 'pids', rel, 'pids.max')),
  ]);
  // No quota (-1), no cpu limit whatever the period: one file fewer per container without one
  // (get and plan read these for every running container).
  const period = quota === undefined || Number(quota.trim()) < 0 ? '100000' : await readOptional(path.join(root, 'cpu', rel, 'cpu.cfs_period_us'));
  const memoryBytes = mem === undefined ? undefined : parseMemoryLimit(mem);
  const cpuMillis = quota === undefined || period === undefined ? undefined : parseCpuV1(quota, period);
  const pidsMax = pids === undefined ? undefined : parsePidsMax(pids);
  if (memoryBytes !== undefined) out.memoryBytes = memoryBytes;
  if (cpuMillis !== undefined) out.cpuMillis = cpuMillis;
  if (pidsMax !== undefined) out.pids = pidsMax;
  return out;
}

/** Current memory usage in bytes (v1 memory.usage_in_bytes, v2 memory.current), if readable. */
export async function readMemoryUsage(loc: CgroupLocation): Promise<number | undefined> {
  const root = loc.root ?? CGROUP_ROOT;
  const mode = loc.mode ?? (await detectCgroupMode(root));
  const rel = loc.cgroupsPath.replace(/^\/+/, '');
  const file = mode === 'v2' ? path.join(root, rel, 'memory.current') : path.join(root, 'memory', rel, 'memory.usage_in_bytes');
  const text = await readOptional(file);
  return text === undefined ? undefined : parseMemoryLimit(text);
}

/**
 * Whether the cgroup's processes are frozen, or being frozen (runc pause: v1 freezer.state not
 * THAWED, v2 cgroup.freeze 1); false when it cannot be read (no such cgroup: nothing to thaw).
 */
export async function isFrozen(loc: CgroupLocation): Promise<boolean> {
  const root = loc.root ?? CGROUP_ROOT;
  const mode = loc.mode ?? (await detectCgroupMode(root));
  const rel = loc.cgroupsPath.replace(/^\/+/, '');
  if (mode === 'v2') return (await readOptional(path.join(root, rel, 'cgroup.freeze')))?.trim() === '1';
  const state = (await readOptional(path.join(root, 'freezer', rel, 'freezer.state')))?.trim();
  return state !== undefined && state !== 'THAWED';
}

/**
 * Directories that are cgroup hierarchy roots: on v2 the root itself; on v1/hybrid every real
 * directory under it (cpu, memory, pids, systemd, unified...; symlinks such as cpu -> cpu,cpuacct
 * are skipped so that no hierarchy is visited twice).
 */
export async function cgroupHierarchies(root = CGROUP_ROOT): Promise<string[]> {
  if ((await detectCgroupMode(root)) === 'v2') return [root];
  let entries: Dirent[];
  try {
    entries = readdirSync(root, { withFileTypes: true }); // local and small: see small-file.ts
  } catch {
    return [];
  }
  return entries
    .filter((e) => e.isDirectory())
    .map((e) => path.join(root, e.name))
    .sort();
}

/** Existing directories of a cgroup path, one per hierarchy. */
export async function existingCgroupDirs(cgroupsPath: string, root = CGROUP_ROOT): Promise<string[]> {
  const rel = cgroupsPath.replace(/^\/+/, '');
  const out: string[] = [];
  for (const h of await cgroupHierarchies(root)) {
    const p = path.join(h, rel);
    if (await exists(p)) out.push(p);
  }
  return out;
}

/** Pids in a cgroup directory (its cgroup.procs), not descending into children. */
export async function cgroupProcs(dir: string): Promise<number[]> {
  const text = await readOptional(path.join(dir, 'cgroup.procs'));
  if (!text) return [];
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map(Number)
    .filter((n) => Number.isSafeInteger(n) && n > 0);
}

/** Remove a cgroup dir and its child cgroups (deepest first). Empty cgroups only; ENOENT is fine. */
export async function removeCgroupDir(dir: string): Promise<void> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  for (const e of entries) if (e.isDirectory()) await removeCgroupDir(path.join(dir, e.name));
  try {
    rmdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new Error(`cannot remove cgroup ${dir}`, { cause: err });
  }
}

/** rmdir a cgroup dir only if it has no child cgroups and no processes; true when it is gone. */
export async function removeCgroupDirIfEmpty(dir: string): Promise<boolean> {
  try {
    rmdirSync(dir);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return true;
    if (code === 'EBUSY' || code === 'ENOTEMPTY') return false;
    throw new Error(`cannot remove cgroup ${dir}`, { cause: err });
  }
}
