/** Process checks through /proc (no process spawned). */
import { readdir, readFile } from 'node:fs/promises';
import { readSmallFile } from '../../util/small-file.js';
import { ALL_CAPABILITIES } from './oci-config.js';

export interface ProcStat {
  pid: number;
  /** One letter: R, S, D, Z (zombie), T, X... */
  state: string;
  ppid: number;
  /** Start time in clock ticks since boot (field 22): with the pid, identifies a process. */
  startTime: number;
}

export function parseProcStat(text: string): ProcStat | undefined {
  // comm (field 2) is in parentheses and may contain spaces and ')'.
  const close = text.lastIndexOf(')');
  const open = text.indexOf('(');
  if (open < 0 || close < 0) return undefined;
  const pid = Number(text.slice(0, open).trim());
  const rest = text.slice(close + 2).split(' ');
  // rest[0] is field 3 (state); field 22 is rest[19].
  return { pid, state: rest[0] ?? '', ppid: Number(rest[1]), startTime: Number(rest[19]) };
}

export async function readProcStat(pid: number): Promise<ProcStat | undefined> {
  try {
    return parseProcStat(await readSmallFile(`/proc/${pid}/stat`));
  } catch {
    return undefined;
  }
}

/** Alive = exists and is not a zombie; with startTime, also the same process (not a reused pid). */
export async function isAlive(pid: number, startTime?: number): Promise<boolean> {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  const st = await readProcStat(pid);
  if (!st || st.state === 'Z' || st.state === 'X') return false;
  return startTime === undefined || st.startTime === startTime;
}

/** The command line of a process (NUL-separated args joined by spaces), '' if gone. */
export async function readCmdline(pid: number): Promise<string> {
  try {
    return (await readSmallFile(`/proc/${pid}/cmdline`)).split('\0').join(' ').trim();
  } catch {
    return '';
  }
}

/** The process's hard RLIMIT_NOFILE, from /proc/self/limits. */
export async function hostNofileHard(): Promise<number> {
  try {
    const text = await readFile('/proc/self/limits', 'utf8');
    const line = text.split('\n').find((l) => l.startsWith('Max open files'));
    const fields = line?.trim().split(/\s+/) ?? [];
    const hard = fields[4];
    if (hard === 'unlimited') return Number.MAX_SAFE_INTEGER;
    const n = Number(hard);
    return Number.isSafeInteger(n) && n > 0 ? n : 1024;
  } catch {
    return 1024;
  }
}

/**
 * Live processes whose command line contains `needle`. Scans all of /proc: for rare recovery
 * paths only, never per container in a hot path.
 */
export async function findProcessesByCmdline(needle: string): Promise<{ pid: number; cmdline: string }[]> {
  const out: { pid: number; cmdline: string }[] = [];
  for (const e of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (pid === process.pid) continue;
    const cmdline = await readCmdline(pid);
    if (cmdline.includes(needle) && (await isAlive(pid))) out.push({ pid, cmdline });
  }
  return out;
}

/** Capability names in a /proc status hex mask (bit n = capability number n). */
export function capabilitiesOfMask(hex: string): string[] {
  const mask = BigInt(`0x${hex.trim() || '0'}`);
  return ALL_CAPABILITIES.filter((_c, i) => (mask >> BigInt(i)) & 1n);
}

/** The capability bounding set of this process (what it can give to containers). */
export async function readBoundingCapabilities(): Promise<string[]> {
  try {
    const text = await readFile('/proc/self/status', 'utf8');
    const line = text.split('\n').find((l) => l.startsWith('CapBnd:'));
    return line ? capabilitiesOfMask(line.slice('CapBnd:'.length)) : [...ALL_CAPABILITIES];
  } catch {
    return [...ALL_CAPABILITIES];
  }
}
