/** stop(): SIGTERM, the grace period, SIGKILL; the exit recorded; what the run left cleared. */
import type { StopOptions } from '../runtime.js';
import { KILL_WAIT_MS, waitGone } from './cleanup.js';
import { unmountAll } from '../../util/mounts.js';
import { isRunning } from './observe.js';
import type { RuncContext, Target } from './runc-context.js';
import { readStatus } from './store.js';
import { noteExit, noteUnseenEnd } from './run-status.js';
import { leftPausedByRepair, resumeLeftRepairForStop } from './repair-pause.js';
import { isFrozen } from './cgroups.js';

export async function stopContainer(rc: RuncContext, key: string, opts: StopOptions): Promise<{ exitCode?: number }> {
  const t = rc.target(key);
  return rc.locks.run(key, async () => {
    await rc.requireRecord(t);
    return stopLocked(rc, t, opts.graceSeconds, opts.leaveExited);
  });
}

/** stop() of a container whose key lock the caller holds (stop, remove). */
export async function stopLocked(rc: RuncContext, t: Target, graceSeconds: number, leaveExited = false): Promise<{ exitCode?: number }> {
  const runc = await rc.runc();
  const st = await rc.ourState(t);
  if (st && isRunning(st)) {
    await resumeLeftRepairForStop(rc, t, st.pid);
    // A frozen process takes no signal until it is thawed: paused still, the stop sat out its
    // whole grace period, then `runc kill --all` thawed it for the SIGKILL.
    const frozen = await isFrozen(await rc.cgroupOf(t.cp)).catch(() => false);
    if (frozen && leftPausedByRepair(t)) {
      // Kept frozen by a left repair (repair-pause.ts: a port unwalled, or it could not tell, or
      // its resume failed): it must not run again, and the grace would be waited for nothing.
      // `runc kill --all` freezes, signals every process, then thaws: each ends without running
      // another instruction of its own. Not the plain kill after it (init alone signalled, the
      // cgroup thawed): a kill --all that fails leaves it frozen, and the stop fails.
      await runc.kill(t.id, 'SIGKILL', { all: true });
      if (!(await waitGone(st.pid, KILL_WAIT_MS, rc.waiter))) throw new Error(`${t.key}: pid ${st.pid} survived SIGKILL`);
    } else {
      await runc.kill(t.id, 'SIGTERM').catch(() => undefined); // it may just have exited
      // Paused by hand or by another tool: thawed after the SIGTERM is queued, so that it takes it
      // and ends within its grace, as `docker stop` does with a paused container.
      if (frozen) await runc.resume(t.id).catch(() => undefined);
      if (!(await waitGone(st.pid, Math.max(0, graceSeconds) * 1000, rc.waiter))) {
        await runc.kill(t.id, 'SIGKILL', { all: true }).catch(() => runc.kill(t.id, 'SIGKILL').catch(() => undefined));
        if (!(await waitGone(st.pid, KILL_WAIT_MS, rc.waiter))) throw new Error(`${t.key}: pid ${st.pid} survived SIGKILL`);
      }
    }
  }
  // A run that ended (now, or before): its exit code. `created` never ran: nothing to record.
  const ran = st !== undefined && st.status !== 'created' && st.status !== 'creating';
  const exitCode = ran ? await noteExit(rc, t.cp) : (await readStatus(t.cp.status)).lastExitCode;
  if (!ran) await noteUnseenEnd(rc, t.cp);
  // As after a crash: runc's `stopped` state and conmon's exit file stay until the next start.
  if (leaveExited) return exitCode === undefined ? {} : { exitCode };
  // Also clears what an interrupted start left (conmon, half-created runc state, cgroups).
  await rc.scrub(t, runc, false);
  await unmountAll(t.cp.rootfs, { sleep: rc.waiter.sleep });
  await rc.removeEmptyCgroupParent();
  return exitCode === undefined ? {} : { exitCode };
}
