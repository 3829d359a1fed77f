/**
 * A running container frozen (runc pause: the cgroup freezer) while acetate writes on its disk
 * with the room it keeps there (disk/room-reserve.ts): the markers that hide node data made after
 * its start, when the container has filled its disk. Frozen, none of its processes can take the
 * freed room before acetate's write; the pause lasts that write (a few ms).
 *
 * A marker in its run dir names the pause while it lasts: an acetate killed in between leaves the
 * container frozen, and the next `acetate run` resumes it (resumeLeftFreezes) before it watches.
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { existsNow, removePaths, writeSmallFile } from '../../util/small-file.js';
import { messageOf } from '../../contracts/errors.js';
import { keyOfId, type ContainerPaths } from './paths.js';
import type { RuncContext } from './runc-context.js';

const MARKER = 'frozen-for-room';

function markerOf(cp: Pick<ContainerPaths, 'runDir'>): string {
  return path.join(cp.runDir, MARKER);
}

/**
 * `fn` with container `id` frozen, under its lock (no start, stop or repair beside it). A container
 * not running (stopped, gone) or paused already (a repair's pause: repair-pause.ts) has nothing
 * that writes: `fn` runs as it is and the pause is left to its owner.
 */
export async function whileFrozen<T>(rc: RuncContext, id: string, fn: () => Promise<T>): Promise<T> {
  const key = keyOfId(id)?.key;
  if (!key) throw new Error(`${JSON.stringify(id.slice(0, 80))} is not a container id of acetate`);
  const t = rc.target(key);
  return rc.locks.run(key, async () => {
    const st = await rc.ourState(t);
    if (st?.status !== 'running') return fn();
    const runc = await rc.runc();
    await writeSmallFile(markerOf(t.cp), `${st.pid}\n`);
    await runc.pause(t.id);
    let result: T;
    try {
      result = await fn();
    } finally {
      try {
        await runc.resume(t.id);
        await removePaths([markerOf(t.cp)]);
      } catch (err) {
        // eslint-disable-next-line no-unsafe-finally -- the container left frozen is the news
        throw new Error(`${key}: frozen to place its host-view markers and could not be resumed: ${messageOf(err)}`, { cause: err });
      }
    }
    return result;
  });
}

/**
 * Before `run` watches: containers an earlier acetate froze for room and did not resume (it was
 * killed in between) are resumed. One readdir of the run dir's containers, a stat each.
 */
export async function resumeLeftFreezes(rc: RuncContext, onError: (err: unknown) => void): Promise<void> {
  const ids = await readdir(rc.paths.runContainersDir).catch(() => [] as string[]);
  for (const id of ids) {
    const cp = rc.pathsOf(id);
    if (!existsNow(markerOf(cp))) continue;
    const key = keyOfId(id)?.key;
    if (!key) continue;
    await rc.locks
      .run(key, async () => {
        if (!existsNow(markerOf(cp))) return;
        await (await rc.runc()).resume(id);
        await removePaths([markerOf(cp)]);
      })
      .catch((err: unknown) => onError(new Error(`${key}: left frozen by an earlier acetate and could not be resumed: ${messageOf(err)}`, { cause: err })));
  }
}
