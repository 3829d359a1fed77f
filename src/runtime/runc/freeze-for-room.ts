/**
 * A running container frozen (runc pause: the cgroup freezer) while acetate writes on its disk
 * with the room it keeps there (disk/room-reserve.ts): the markers that hide node data made after
 * its start, when the container has filled its disk. Frozen, none of its processes can take the
 * freed room before acetate's write; the pause lasts that write (two runc calls, a truncate, the
 * markers, a fallocate: tens of ms).
 *
 * A marker in its run dir names the pause (the init's pid) while it lasts. A pause acetate could
 * not end (runc resume failed, acetate killed in between) is ended by the next freeze of that
 * container (whileFrozen) or by the next apply or run (resumeLeftFreezes, before they work). A
 * marker whose pid is not the container's init now is stale: removed, nothing resumed. A container
 * an interrupted repair left paused (repair-pause.ts) is that repair's to end: never resumed here.
 */
import { readdir } from 'node:fs/promises';
import { existsNow, readSmallFileNow, removePaths, writeSmallFile } from '../../util/small-file.js';
import { messageOf } from '../../contracts/errors.js';
import { frozenMarkerOf, keyOfId, type ContainerPaths } from './paths.js';
import type { RuncContext, Target } from './runc-context.js';
import { markerOf as repairMarkerOf } from './repair-pause.js';

/** Whether a pause of pid `pid` is one of ours left unended (no repair's beside it). */
function leftByUs(cp: ContainerPaths, pid: number): boolean {
  let marked: number;
  try {
    marked = Number(readSmallFileNow(frozenMarkerOf(cp)).trim());
  } catch {
    return false;
  }
  return marked === pid && !existsNow(repairMarkerOf(cp));
}

/** runc resume, tried 3 times (a busy node can fail one), then the marker removed. */
async function resumeOurs(rc: RuncContext, t: Target): Promise<void> {
  const runc = await rc.runc();
  let last: unknown;
  for (let i = 0; i < 3; i++) {
    try {
      await runc.resume(t.id);
      await removePaths([frozenMarkerOf(t.cp)]);
      return;
    } catch (err) {
      last = err;
      await rc.waiter.sleep(100);
    }
  }
  throw new Error(
    `${t.key}: frozen to place its host-view markers and could not be resumed (tried again at the next freeze, apply or run): ${messageOf(last)}`,
    {
      cause: last,
    },
  );
}

/**
 * `fn` with container `id` frozen, under its lock (no start, stop or repair beside it). A container
 * not running (stopped, gone) has nothing that writes; one paused by someone else (a repair) is
 * frozen already and stays as its owner left it. One paused by an earlier call that could not
 * resume it is ours: resumed after `fn`.
 */
export async function whileFrozen<T>(rc: RuncContext, id: string, fn: () => Promise<T>): Promise<T> {
  const key = keyOfId(id)?.key;
  if (!key) throw new Error(`${JSON.stringify(id.slice(0, 80))} is not a container id of acetate`);
  const t = rc.target(key);
  return rc.locks.run(key, async () => {
    const st = await rc.ourState(t);
    // Our own earlier pause, unended (the state file may say running of a frozen container: runc
    // tells a pause by the freezer, runc-state-file.ts does not).
    const live = st?.status === 'running' || st?.status === 'paused';
    const ours = live && leftByUs(t.cp, st.pid);
    if (st?.status !== 'running' && !ours) return fn();
    if (!ours) {
      await writeSmallFile(frozenMarkerOf(t.cp), `${st!.pid}\n`);
      try {
        await (await rc.runc()).pause(t.id);
      } catch (err) {
        await resumeOurs(rc, t).catch(() => undefined); // a pause half done (idempotent)
        throw new Error(`${key}: cannot freeze it to place its host-view markers: ${messageOf(err)}`, { cause: err });
      }
    }
    let result: T;
    try {
      result = await fn();
    } finally {
      await resumeOurs(rc, t);
    }
    return result;
  });
}

/**
 * Before apply and run work (sweepLeftovers): pauses an earlier acetate made for room and did not
 * end (it was killed in between) are ended. One readdir of the run dir's containers, a stat each.
 * Returns a warning per container that could not be resumed.
 */
export async function resumeLeftFreezes(rc: RuncContext): Promise<string[]> {
  const warnings: string[] = [];
  const ids = await readdir(rc.paths.runContainersDir).catch(() => [] as string[]);
  for (const id of ids) {
    if (!existsNow(frozenMarkerOf(rc.pathsOf(id)))) continue;
    const key = keyOfId(id)?.key;
    if (!key) continue;
    const t = rc.target(key);
    await rc.locks
      .run(key, async () => {
        const st = await rc.ourState(t);
        // resume is idempotent: a container that is not paused is left as it is.
        if ((st?.status === 'paused' || st?.status === 'running') && leftByUs(t.cp, st.pid)) await resumeOurs(rc, t);
        else await removePaths([frozenMarkerOf(t.cp)]); // stale: another process, or not paused
      })
      .catch((err: unknown) => warnings.push(messageOf(err)));
  }
  return warnings;
}
