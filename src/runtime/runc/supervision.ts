/**
 * Is a container's process still supervised, and how did a run end? conmon is the container
 * init's parent: it holds the other end of its stdout/stderr (the log) and is the only process
 * that can learn its exit code (waitpid works for children only). When conmon is killed, the
 * init is re-parented to PID 1 (conmon double-forks, so no acetate is its ancestor), keeps
 * running, and its exit code is lost for good: neither runc, the cgroup nor a pidfd can give it
 * back. So the rule, documented in docs/supervision.md:
 *
 * - a process whose supervisor is gone is left running (killing a working service to regain its
 *   log would be worse) and reported as unsupervised (condition Supervised=False, SupervisorLost);
 * - a run whose exit code cannot be known is treated as possibly successful: restartPolicy
 *   Always restarts it, OnFailure and Never do not (see plan.restartWanted).
 *
 * The same holds when a run-dir file is removed by hand (runc's state, conmon's files): a process
 * found in the container's cgroup with no runc state is running, unsupervised; a run that started
 * in this boot and whose end acetate never recorded ended with an unknown exit code.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { readSmallFile } from '../../util/small-file.js';
import { cgroupProcs, detectCgroupMode, type CgroupLocation } from './cgroups.js';
import type { ContainerPaths } from './paths.js';
import { readCmdline, readProcStat } from '../../util/processes.js';

let bootId: string | undefined;

/** This boot's id (/proc/sys/kernel/random/boot_id): a status written in another boot describes no process. */
export function currentBootId(): string {
  if (bootId === undefined) {
    try {
      bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      bootId = '';
    }
  }
  return bootId;
}

/** `initPid:ppid` pairs already checked (the parent of a live process only changes when its parent dies). */
const checked = new Map<string, boolean>();

/**
 * The pairs found supervised, kept across processes by read-cache.ts: a pair names a live init
 * (its start time checked by the caller) whose parent is still the conmon it was, since a
 * process whose parent dies is re-parented, and its ppid changes with it.
 */
export const supervisedPairs = {
  export: (): string[] => [...checked].flatMap(([pair, ours]) => (ours ? [pair] : [])),
  import(pairs: readonly string[]): void {
    for (const p of pairs) if (typeof p === 'string' && !checked.has(p)) checked.set(p, true);
  },
  get size(): number {
    return checked.size;
  },
};

/**
 * Why a running container's init is unsupervised (`problem`), or its conmon's pid when its parent
 * is its conmon. One /proc read per call, none when the caller read the parent already
 * (`knownPpid`, see RuncState.initPpid); the parent's command line is read once per (init,
 * parent) pair.
 */
export async function supervisionOf(initPid: number, cp: ContainerPaths, knownPpid?: number): Promise<{ problem?: string; conmonPid?: number }> {
  const ppid = knownPpid ?? (await readProcStat(initPid))?.ppid;
  if (ppid === undefined) return {}; // gone meanwhile: the next look reports the exit
  const pair = `${initPid}:${ppid}`;
  let ours = checked.get(pair);
  if (ours === undefined) {
    const cmd = await readCmdline(ppid);
    ours = cmd.includes('conmon') && cmd.includes(cp.bundle);
    if (checked.size > 10_000) checked.clear();
    checked.set(pair, ours);
  }
  if (ours) return { conmonPid: ppid };
  return {
    problem: `its supervisor (conmon) is gone: the process (pid ${initPid}) keeps running, but its output is no longer logged and its exit code will not be known`,
  };
}

/**
 * Put back what conmon and acetate need at the end of a supervised run when it was removed by
 * hand under it: the exit dir (where conmon writes the exit code; without it the code is lost)
 * and the pid files (which tell acetate whom to wait for). Only the lock holder calls this.
 */
export function repairRunFiles(cp: ContainerPaths, initPid: number, conmonPid: number): void {
  if (!existsSync(cp.exitDir)) mkdirSync(cp.exitDir, { recursive: true, mode: 0o700 });
  if (!existsSync(cp.conmonPidFile)) writeFileSync(cp.conmonPidFile, `${conmonPid}`, { mode: 0o600 });
  if (!existsSync(cp.pidFile)) writeFileSync(cp.pidFile, `${initPid}`, { mode: 0o600 });
}

/** Live processes in the container's cgroup (for a container runc no longer knows). */
export async function cgroupMembers(loc: CgroupLocation): Promise<number[]> {
  const root = loc.root ?? '/sys/fs/cgroup';
  const mode = loc.mode ?? (await detectCgroupMode(root));
  const rel = loc.cgroupsPath.replace(/^\/+/, '');
  const dir = mode === 'v2' ? path.join(root, rel) : path.join(root, 'pids', rel);
  return cgroupProcs(dir);
}

/**
 * How many times the kernel's OOM killer killed a process of the cgroup: v2 memory.events
 * `oom_kill`, v1 memory.oom_control `oom_kill` (kernel ≥ 4.13). undefined when not readable.
 */
export async function oomKills(loc: CgroupLocation): Promise<number | undefined> {
  const root = loc.root ?? '/sys/fs/cgroup';
  const mode = loc.mode ?? (await detectCgroupMode(root));
  const rel = loc.cgroupsPath.replace(/^\/+/, '');
  const file = mode === 'v2' ? path.join(root, rel, 'memory.events') : path.join(root, 'memory', rel, 'memory.oom_control');
  let text: string;
  try {
    text = await readSmallFile(file);
  } catch {
    return undefined;
  }
  const m = /^oom_kill (\d+)$/m.exec(text);
  return m ? Number(m[1]) : undefined;
}
