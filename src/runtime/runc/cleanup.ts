/**
 * Clearing what a container's runs left on the node: its conmon, runc state (also half-created),
 * cgroups, and the instance's cgroup parent once empty. Every function is idempotent and converges
 * whatever point an earlier acetate was killed at.
 */
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { pollUntil, type Sleep } from '../../util/poll.js';
import { cgroupHierarchies, cgroupProcs, existingCgroupDirs, removeCgroupDir, removeCgroupDirIfEmpty } from './cgroups.js';
import { readPid, readSync } from './conmon.js';
import { CONMON_CGROUP, removeConmonCgroupsIfEmpty } from './conmon-cgroup.js';
import { frozenMarkerOf, type ContainerPaths } from './paths.js';
import { findProcessesByCmdline, isAlive, readCmdline } from '../../util/processes.js';
import type { RuncCli } from './runc-cli.js';
import { exists } from '../../util/exists.js';
import { idmapDir, releaseIdmappedLayers } from '../walls/idmap.js';
import { hostPathStagingDir, releaseStagedHostPaths } from '../walls/hostpath-open.js';

export interface Waiter {
  sleep: Sleep;
  now: () => number;
  /** Interval of liveness polls (ms). */
  pollIntervalMs?: number;
}

/** How long to wait for a SIGKILLed process to be gone. */
export const KILL_WAIT_MS = 15_000;

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    /* already gone */
  }
}

/**
 * Wait until a pid is gone (zombies count as gone); false at the deadline. Polls after 2 ms first,
 * then less often: a killed container's init takes a few ms to die (its mount namespace, with the
 * root overlay, is torn down on the way).
 */
export function waitGone(pid: number, timeoutMs: number, w: Waiter): Promise<boolean> {
  return pollUntil(async () => !(await isAlive(pid)), { timeoutMs, intervalMs: w.pollIntervalMs ?? 50, firstIntervalMs: 2, sleep: w.sleep, now: w.now });
}

async function isOurConmon(pid: number, cp: ContainerPaths): Promise<boolean> {
  const cmd = await readCmdline(pid);
  return cmd.includes('conmon') && cmd.includes(cp.bundle);
}

/** conmon exits after its container; make sure it did (it waits forever on a never-started one). */
export async function reapConmon(cp: ContainerPaths, w: Waiter): Promise<void> {
  const pid = await readPid(cp.conmonPidFile);
  if (pid === undefined) return;
  // Gone already, or the pid now belongs to another process.
  if (!(await isAlive(pid)) || !(await isOurConmon(pid, cp))) return;
  if (await waitGone(pid, 2_000, { ...w, pollIntervalMs: 20 })) return;
  kill(pid, 'SIGKILL');
  await waitGone(pid, KILL_WAIT_MS, { ...w, pollIntervalMs: 20 });
}

/**
 * Cgroup dirs of the container that runc left (its state was lost, or a create was interrupted):
 * kill what is inside, rmdir. Retried until a deadline: a process may still be joining (a killed
 * `runc create`), or the kernel may briefly report EBUSY for a cgroup whose tasks just exited.
 */
export async function removeContainerCgroups(cp: ContainerPaths, cgroupRoot: string, w: Waiter): Promise<void> {
  const deadline = w.now() + KILL_WAIT_MS;
  for (;;) {
    const dirs = await existingCgroupDirs(cp.cgroupsPath, cgroupRoot);
    if (dirs.length === 0) return;
    try {
      for (const d of dirs) for (const pid of await cgroupProcs(d)) kill(pid, 'SIGKILL');
      for (const d of dirs) await removeCgroupDir(d);
      return;
    } catch (err) {
      if (w.now() > deadline) throw err;
      await w.sleep(50);
    }
  }
}

/** How long a cgroup whose last task just exited may still refuse its rmdir (EBUSY). */
const EXITED_TASKS_MS = 1_000;

/**
 * rmdir the instance's cgroup parent in every hierarchy where it is empty (the conmons' cgroup
 * first, when no conmon is left). Left while containers or conmons are in it (the usual case
 * while any run: one look); left with no task and no container's cgroup in it, it is the kernel
 * still finishing an exit (the last conmon's, just reaped): looked at again shortly. A destroy
 * of the last container left the parent behind so, now and then (a leak check found it).
 */
export async function removeCgroupParentIfEmpty(cgroupParent: string, cgroupRoot: string, w: Waiter, idle: () => boolean = () => true): Promise<void> {
  const rel = cgroupParent.replace(/^\/+/, '');
  const hierarchies = await cgroupHierarchies(cgroupRoot);
  const deadline = w.now() + EXITED_TASKS_MS;
  // `idle` asked before each look: a start that began meanwhile makes these dirs again.
  while (idle()) {
    await removeConmonCgroupsIfEmpty(cgroupParent, cgroupRoot);
    const left: string[] = [];
    for (const h of hierarchies) if (!(await removeCgroupDirIfEmpty(path.join(h, rel)).catch(() => false))) left.push(path.join(h, rel));
    if (left.length === 0 || w.now() > deadline || !(await onlyExitedTasks(left))) return;
    await w.sleep(20);
  }
}

/** No cgroup of a container under these dirs, and no live task in them or in their conmons' cgroup. */
async function onlyExitedTasks(dirs: readonly string[]): Promise<boolean> {
  for (const d of dirs) {
    const children = (await readdir(d, { withFileTypes: true }).catch(() => [])).filter((e) => e.isDirectory()).map((e) => e.name);
    if (children.some((c) => c !== CONMON_CGROUP)) return false;
    for (const g of [d, ...children.map((c) => path.join(d, c))]) {
      for (const pid of await cgroupProcs(g).catch(() => [] as number[])) if (await isAlive(pid)) return false;
    }
  }
  return true;
}

export interface ScrubInput {
  id: string;
  cp: ContainerPaths;
  runc: RuncCli;
  cgroupRoot: string;
  /** Search /proc for processes working on the bundle (conmon, `runc create`) even without a sign of an interrupted launch. */
  scan: boolean;
}

/**
 * Clear what an earlier run, or an interrupted start/stop/remove, left of a container that is not
 * running: conmon and `runc create` processes, runc state (also a half-written one), cgroups.
 * /proc is only searched (scan) when a launch never reported its result, or when asked.
 */
export async function scrubContainer(s: ScrubInput, w: Waiter): Promise<void> {
  const { cp } = s;
  const interrupted = s.scan || ((await exists(cp.syncFile)) && (await readSync(cp.syncFile)) === undefined);
  if (interrupted) {
    const procs = await findProcessesByCmdline(cp.bundle);
    for (const p of procs) kill(p.pid, 'SIGKILL');
    for (const p of procs) await waitGone(p.pid, KILL_WAIT_MS, w);
  }
  const runcDir = path.join(s.runc.root, s.id);
  if (await exists(runcDir)) await s.runc.delete(s.id, { force: true });
  await reapConmon(cp, w);
  if ((await exists(runcDir)) && !(await exists(path.join(runcDir, 'state.json')))) {
    await rm(runcDir, { recursive: true, force: true }); // a create interrupted before runc wrote its state
  }
  await removeContainerCgroups(cp, s.cgroupRoot, w);
  // A start interrupted between the idmapped mounts and runc create left them on the node.
  await releaseIdmappedLayers(idmapDir(cp.runDir));
  // And the hostPaths it had staged for runc (walls/hostpath-open.ts).
  await releaseStagedHostPaths(hostPathStagingDir(cp.runDir));
  if (interrupted) await rm(cp.syncFile, { force: true });
  // A pause for room that was not ended names a process that is gone now (freeze-for-room.ts).
  await rm(frozenMarkerOf(cp), { force: true });
}
