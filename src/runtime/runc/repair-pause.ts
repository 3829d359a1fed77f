/**
 * A network repair of a running container, paused and held.
 *
 * A repair may give the running container a new veth (its eth0 deleted: a container with
 * NET_ADMIN can do that at will), which is a port of the bridge before its address and MAC are
 * walled (walls.ts enrols it after the plugins' ADD; this kernel has no bridge meta match to drop
 * a port not enrolled yet). So its processes are paused (runc pause: the freezer) and what would
 * leave its network namespace is held (network/repair-hold.ts) until the repair is done.
 *
 * A marker in the container's run dir names the pause's process and every hold made for it, for
 * the next acetate should this one die in between (or fail to release them): that acetate does
 * not resume the container on its own (the new port may not be walled yet) but reports a network
 * problem, so the repair is planned again and ends them (read-containers.ts); a start ends them
 * in the namespace it joins (a stopped container's namespace persists, and a hold in it).
 */
import path from 'node:path';
import { messageOf } from '../../contracts/errors.js';
import { existsNow, readSmallFileNow, removePaths, writeSmallFile } from '../../util/small-file.js';
import { holdFrames, holdsIn, isHoldName, netnsOfPid, newHoldName, releaseFrames, unwalledPortsInto } from '../network/repair-hold.js';
import type { ContainerPaths } from './paths.js';
import type { RuncContext, Target } from './runc-context.js';

interface RepairMarker {
  pid: number;
  /** Every hold made for the pause (a repair retried after an interrupted one adds its own). */
  holds: string[];
}

/** Ids whose repair (and pause) this process is running now. */
const repairing = new Set<string>();

/**
 * `update` run with the container paused and its frames held. Both end after it when it worked;
 * after a failure only when no port of the container is left on the bridge unwalled (an ADD not
 * finished, or an interrupted repair's): else it stays paused and held for the next repair.
 */
export async function whilePausedAndHeld<T>(rc: RuncContext, t: Target, pid: number, update: () => Promise<T>): Promise<T> {
  const runc = await rc.runc();
  const netns = netnsOfPid(pid);
  // An interrupted repair's holds (of this process, when the marker is its), and those of them
  // still in place: one of those is this repair's hold, made whole again under its name, no
  // second one beside it (a tenant that used up its namespace's hook entries could make a second
  // fail). A hold that cannot be made fails the repair, which then resumes only with no port unwalled.
  const left = readMarker(t.cp);
  const leftHolds = left?.pid === pid ? left.holds : [];
  const present = leftHolds.length ? (await holdsIn(netns).catch(() => [])).filter((h) => leftHolds.includes(h)) : [];
  const hold = present[0] ?? newHoldName();
  const holds = [...new Set([...leftHolds, hold])];
  repairing.add(t.id); // this process's reads leave this pause alone (read-containers.ts)
  try {
    let result: T | undefined;
    let failure: unknown;
    let made = false;
    try {
      await writeSmallFile(markerOf(t.cp), `${JSON.stringify({ pid, holds })}\n`);
      await runc.pause(t.id); // paused already by an interrupted repair: left so
      // Made, or a left one of that name made whole again (one transaction: delete, then make):
      // its tables are only trusted by name while the container stayed frozen.
      await holdFrames(netns, hold);
      made = true;
      result = await update();
    } catch (err) {
      failure = err;
    }
    if (failure) {
      const unwalled = await unwalledPortsInto(netns, rc.net.config.bridge).catch((err: unknown) => [`(cannot tell: ${messageOf(err)})`]);
      if (unwalled.length)
        throw new Error(`${t.key}: the repair failed (${messageOf(failure)}); left paused and held, a port of it not walled: ${unwalled.join(', ')}`, {
          cause: failure,
        });
    }
    try {
      // A new hold that could not be made (one nft transaction: all or nothing) has nothing to
      // release; a left one that could not be made whole again is still there: released.
      await releaseFrames(netns, made || present.includes(hold) ? holds : holds.filter((h) => h !== hold));
      await runc.resume(t.id);
      await removePaths([markerOf(t.cp)]);
    } catch (err) {
      const what = failure ? `the repair failed (${messageOf(failure)}) and` : 'the repair was done but';
      throw new Error(`${t.key}: ${what} its pause and hold could not be ended: left paused for the next repair`, { cause: err });
    }
    if (failure) throw failure;
    return result as T;
  } finally {
    repairing.delete(t.id);
  }
}

/**
 * What a read says of a running container an interrupted repair left paused and held (its
 * marker there, no repair of this process running): a network problem, so the repair is planned
 * and ends them once its new port is walled. Undefined when there is none.
 */
export function leftRepairProblem(id: string, cp: ContainerPaths): string | undefined {
  if (repairing.has(id) || !existsNow(markerOf(cp))) return undefined;
  return 'an interrupted repair left it paused, its frames held: repairing';
}

/**
 * At a start (its lock held): the holds an interrupted repair left in the namespace the
 * container will join (`netns`, a bound file) released, the marker removed. Nothing runs yet.
 */
export async function endLeftRepairAtStart(id: string, cp: ContainerPaths, netns: string): Promise<void> {
  if (repairing.has(id)) return;
  const left = readMarker(cp);
  if (!left && !existsNow(markerOf(cp))) return;
  await releaseFrames(netns, left?.holds ?? []);
  await removePaths([markerOf(cp)]);
}

/**
 * Before a stop (its lock held) of the process `pid`: a container an interrupted repair left
 * paused is resumed, so the stop's SIGTERM reaches it (a frozen process takes no signal: the stop
 * waited its whole grace period, then `runc kill --all` thawed it for the SIGKILL). Only when no
 * port of it is on the bridge unwalled, as a failed repair decides: else it would run for its
 * grace period with a port the walls do not know; it stays frozen, and the stop SIGKILLs it at
 * once (stop.ts: `runc kill --all` signals before it thaws). Resumed, the left repair is ended whole, as a failed one that leaves
 * nothing unwalled is: its holds released and its marker removed. Left in place, a tenant allowed
 * NET_ADMIN could empty them while it ran (its namespace is its own), and a later repair of the
 * same process (the stop interrupted) would have taken the emptied tables for its hold.
 * Nothing here fails the stop: what cannot be done leaves the old way (frozen, then SIGKILL).
 */
export async function resumeLeftRepairForStop(rc: RuncContext, t: Target, pid: number): Promise<void> {
  if (repairing.has(t.id) || !existsNow(markerOf(t.cp))) return;
  const netns = netnsOfPid(pid);
  const unwalled = await unwalledPortsInto(netns, rc.net.config.bridge).catch(() => ['(cannot tell)']);
  if (unwalled.length) return;
  try {
    await releaseFrames(netns, readMarker(t.cp)?.holds ?? []);
    await (await rc.runc()).resume(t.id);
    await removePaths([markerOf(t.cp)]);
  } catch {
    // The stop goes on: a container still frozen is SIGKILLed frozen (stop.ts).
  }
}

/** Whether an interrupted or failed repair left the container paused (its marker is there; its lock held). */
export function leftPausedByRepair(t: Target): boolean {
  return existsNow(markerOf(t.cp));
}

/** The marker's file in the container's run dir (removed with its other files at a destroy). */
export function markerOf(cp: Pick<ContainerPaths, 'runDir'>): string {
  return path.join(cp.runDir, 'paused-for-repair');
}

/** The marker as written (undefined: none, or not one this module wrote; hold names are checked before use). */
function readMarker(cp: ContainerPaths): RepairMarker | undefined {
  let v: unknown;
  try {
    v = JSON.parse(readSmallFileNow(markerOf(cp)));
  } catch {
    return undefined;
  }
  const m = v as Partial<RepairMarker> | null;
  if (!m || !Number.isSafeInteger(m.pid) || !Array.isArray(m.holds)) return undefined;
  return { pid: m.pid!, holds: m.holds.filter(isHoldName) };
}
