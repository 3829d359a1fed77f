/** What a container's process is doing, from runc's state and the files conmon and acetate keep. */
import { stat } from 'node:fs/promises';
import type { ProcessInfo } from '../runtime.js';
import { readExitCode, readPid } from './conmon.js';
import { hasOwnerMarks } from './ownership.js';
import type { ContainerPaths } from './paths.js';
import { isAlive } from '../../util/processes.js';
import type { ContainerStatusFile } from './store.js';
import { isFrozen, type CgroupLocation } from './cgroups.js';
import { cgroupMembers, currentBootId, oomKills, repairRunFiles, supervisionOf } from './supervision.js';
import type { RuncState } from './runc-state.js';

/**
 * A run that acetate saw start in this boot and never saw end (its end was not recorded): a start
 * writes a status without finishedAt, and every recorded end sets it (run-status.ts). The two
 * times are not compared: startedAt is acetate's clock after `runc start` returned, finishedAt
 * the mtime of conmon's exit file (the kernel's coarse clock, at the exit), so a process that dies
 * at once (an OOM kill of its first allocation) has a recorded end older than its start.
 */
export function unfinishedRun(status: ContainerStatusFile): boolean {
  if (!status.startedAt || status.bootId === undefined || status.bootId !== currentBootId()) return false;
  return !status.finishedAt;
}

/** 'OOMKilled' when the cgroup's OOM killer killed a process and the run ended by SIGKILL. */
export async function exitReason(exitCode: number | undefined, cgroup: CgroupLocation | undefined): Promise<string | undefined> {
  if (!cgroup || (exitCode !== undefined && exitCode !== 137)) return undefined;
  const n = await oomKills(cgroup);
  return n !== undefined && n > 0 ? 'OOMKilled' : undefined;
}

/** running, or paused (acetate never pauses; a paused process still exists). */
export function isRunning(st: RuncState | undefined): boolean {
  return st !== undefined && (st.status === 'running' || st.status === 'paused' || st.status === 'pausing');
}

/** A runc container is acetate's when its annotations say so and name the same container. */
export function isOurs(st: RuncState, namespace: string, name: string): boolean {
  return hasOwnerMarks(st.annotations, namespace, name);
}

/** When a file was last written (ISO), e.g. conmon's exit file = when the run finished. */
export async function mtimeOf(file: string): Promise<string | undefined> {
  return stat(file).then(
    (s) => s.mtime.toISOString(),
    () => undefined,
  );
}

/**
 * ProcessInfo from runc's state (undefined: runc does not know the container). Reads a file or two
 * for exited containers; spawns nothing.
 */
export async function processInfo(
  cp: ContainerPaths,
  st: RuncState | undefined,
  status: ContainerStatusFile,
  cgroup?: CgroupLocation,
  opts: { repair?: boolean } = {},
): Promise<ProcessInfo> {
  const started = status.startedAt ? { startedAt: status.startedAt } : {};
  if (st && isRunning(st)) {
    const { problem: unsupervised, conmonPid } = await supervisionOf(st.pid, cp, st.initPpid);
    if (conmonPid !== undefined && opts.repair) repairRunFiles(cp, st.pid, conmonPid);
    // runc's state file does not tell a freezer pause (runc-state-file.ts): the cgroup does.
    const paused = cgroup !== undefined && (await isFrozen(cgroup).catch(() => false));
    return { state: 'running', pid: st.pid, ...started, ...(unsupervised ? { unsupervised } : {}), ...(paused ? { paused: true as const } : {}) };
  }
  if (st?.status === 'stopped') {
    let exitCode = await readExitCode(cp.exitFile);
    if (exitCode === undefined) {
      // runc says `stopped` as soon as the process is a zombie; until conmon has reaped it and
      // written its exit code, it is reported as still running (for a few milliseconds).
      const conmonPid = await readPid(cp.conmonPidFile);
      const pid = await readPid(cp.pidFile);
      if (conmonPid !== undefined && pid !== undefined && (await isAlive(conmonPid))) return { state: 'running', pid, ...started };
      // conmon may have written the code and exited between the first read and the liveness check.
      exitCode = await readExitCode(cp.exitFile);
    }
    const finishedAt = await mtimeOf(cp.exitFile);
    const reason = await exitReason(exitCode, cgroup);
    const unsupervised =
      exitCode === undefined ? 'its exit code was not recorded (its supervisor, conmon, was gone, or its exit file was removed): exit code unknown' : undefined;
    return {
      state: 'exited',
      ...started,
      ...(finishedAt ? { finishedAt } : {}),
      ...(exitCode !== undefined ? { exitCode } : {}),
      ...(reason ? { reason } : {}),
      ...(unsupervised ? { unsupervised } : {}),
    };
  }
  if (unfinishedRun(status)) {
    // runc has no state for a run that started in this boot and whose end was never recorded:
    // its runc state was removed by hand. Its process may still be in the cgroup...
    const pids = cgroup ? await cgroupMembers(cgroup) : [];
    if (pids.length) {
      return {
        state: 'running',
        pid: pids[0]!,
        ...started,
        unsupervised: `runc has no state for it (removed by hand?): its process (pid ${pids[0]}) keeps running unsupervised, its exit code will not be known`,
      };
    }
    // ...or it ended unseen: exit code unknown (a finished job must not run again, see supervision.ts).
    return { state: 'exited', ...started, unsupervised: 'it ended while acetate had no runc state or supervisor for it: exit code unknown' };
  }
  // Never started, stopped and cleaned up, or created by a start that was interrupted.
  return {
    state: 'absent',
    ...started,
    ...(status.finishedAt ? { finishedAt: status.finishedAt } : {}),
    ...(status.lastExitCode !== undefined ? { exitCode: status.lastExitCode } : {}),
    ...(status.lastReason ? { reason: status.lastReason } : {}),
  };
}
