/**
 * A container's status file at the edges of a run: when it started (and in which boot), how it
 * ended (exit code, OOMKilled), or that it ended unseen. get/list read it back (observe.ts).
 */
import { pollUntil } from '../../util/poll.js';
import { readExitCode, readPid } from './conmon.js';
import { exitReason, mtimeOf, unfinishedRun } from './observe.js';
import type { ContainerPaths } from './paths.js';
import { isAlive } from '../../util/processes.js';
import type { RuncContext } from './runc-context.js';
import { writeJsonAtomic } from '../../util/json-file.js';
import { readStatus, type ContainerStatusFile } from './store.js';
import { currentBootId } from './supervision.js';

/** How long conmon may take to record an exit code after the process is gone. */
const EXIT_FILE_WAIT_MS = 5_000;

/**
 * A run started now: one more start, its time and boot; the last exit code is kept. The last
 * finishedAt is not: its absence is what marks this run's end as not yet recorded (observe.ts).
 */
export async function noteStart(rc: RuncContext, cp: ContainerPaths): Promise<void> {
  const status = await readStatus(cp.status);
  const next: ContainerStatusFile = { starts: status.starts + 1, startedAt: new Date(rc.now()).toISOString(), bootId: currentBootId() };
  if (status.lastExitCode !== undefined) next.lastExitCode = status.lastExitCode;
  await writeJsonAtomic(cp.status, next);
}

/** Record the exit code of a run that ended, before its runc state is deleted. */
export async function noteExit(rc: RuncContext, cp: ContainerPaths): Promise<number | undefined> {
  // runc reports `stopped` as soon as the process is a zombie; conmon writes the code right after.
  const conmonPid = await readPid(cp.conmonPidFile);
  await pollUntil(async () => (await readExitCode(cp.exitFile)) !== undefined || conmonPid === undefined || !(await isAlive(conmonPid)), {
    timeoutMs: EXIT_FILE_WAIT_MS,
    intervalMs: 20,
    firstIntervalMs: 2,
    sleep: rc.waiter.sleep,
    now: rc.now,
  });
  const exitCode = await readExitCode(cp.exitFile);
  const status = await readStatus(cp.status);
  const next: ContainerStatusFile = { ...status, finishedAt: (await mtimeOf(cp.exitFile)) ?? new Date(rc.now()).toISOString() };
  if (exitCode !== undefined) next.lastExitCode = exitCode;
  else delete next.lastExitCode;
  const reason = await exitReason(exitCode, await rc.cgroupOf(cp));
  if (reason) next.lastReason = reason;
  else delete next.lastReason;
  await writeJsonAtomic(cp.status, next);
  return exitCode;
}

/** A run whose end was never recorded (its runc state was lost) ends now, with its exit code unknown. */
export async function noteUnseenEnd(rc: RuncContext, cp: ContainerPaths): Promise<void> {
  const status = await readStatus(cp.status);
  if (!unfinishedRun(status)) return;
  const next: ContainerStatusFile = { ...status, finishedAt: new Date(rc.now()).toISOString() };
  delete next.lastExitCode;
  delete next.lastReason;
  await writeJsonAtomic(cp.status, next);
}
