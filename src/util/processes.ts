/** Process checks through /proc (no process spawned): is a pid alive, and the same process as before? */
import { readdirSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { readSmallFile, readSmallFileNow } from './small-file.js';

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

/**
 * A zombie (state Z, or X) whose other threads are gone: the process has ended. A leader that
 * called pthread_exit while its threads run on is Z too, and alive (/proc/PID/task lists them).
 */
export function hasEnded(st: ProcStat): boolean {
  if (st.state !== 'Z' && st.state !== 'X') return false;
  try {
    return readdirSync(`/proc/${st.pid}/task`).length <= 1;
  } catch {
    return true;
  }
}

/**
 * The start time of a live (not zombie) process, read at once (one synchronous /proc read, for
 * checks on a hot path); undefined when it is gone. With the pid, it names the process: a pid
 * alone may be reused.
 */
export function liveStartTimeNow(pid: number): number | undefined {
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  try {
    const st = parseProcStat(readSmallFileNow(`/proc/${pid}/stat`));
    return !st || hasEnded(st) ? undefined : st.startTime;
  } catch {
    return undefined;
  }
}

/** Whether a pid exists now (signal 0; synchronous, zombies count): for checks on a hot path. */
export function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Alive = exists and is not a zombie; with startTime, also the same process (not a reused pid). */
export async function isAlive(pid: number, startTime?: number): Promise<boolean> {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  const st = await readProcStat(pid);
  if (!st || st.state === 'Z' || st.state === 'X') return false;
  return startTime === undefined || st.startTime === startTime;
}

/**
 * A process as another one can check it later: its pid and its start time (clock ticks since
 * boot, /proc/PID/stat field 22), so that a reused pid is never taken for it.
 */
export interface ProcessIdentity {
  pid: number;
  startTicks: number;
}

let self: Promise<ProcessIdentity | undefined> | undefined;

/** This process's identity (read once); undefined without /proc. */
export function selfIdentity(): Promise<ProcessIdentity | undefined> {
  self ??= readProcStat(process.pid).then((st) => (st ? { pid: process.pid, startTicks: st.startTime } : undefined));
  return self;
}

/** The command line of a process (NUL-separated args joined by spaces), '' if gone. */
export async function readCmdline(pid: number): Promise<string> {
  try {
    return (await readSmallFile(`/proc/${pid}/cmdline`)).split('\0').join(' ').trim();
  } catch {
    return '';
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
