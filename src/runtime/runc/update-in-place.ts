/**
 * Changes to a container that keep its process: limits resized in place (cgroups and the private
 * area's filesystem), ports published again or a broken network repaired, the record rewritten.
 */
import path from 'node:path';
import type { Resources } from '../../api/types.js';
import { existsNow, removePaths, writeSmallFile } from '../../util/small-file.js';
import type { AppliedRecord, ResizeResult } from '../runtime.js';
import type { NetworkStatus } from '../network/driver.js';
import { isRunning } from './observe.js';
import type { ContainerPaths } from './paths.js';
import { resizeInPlace } from './resize.js';
import type { RuncContext } from './runc-context.js';
import { writeJsonAtomic } from '../../util/json-file.js';
import { appliedRecord } from '../applied-record.js';
import { holdFrames, netnsOfPid, releaseFrames } from '../network/repair-hold.js';

export async function updateResources(rc: RuncContext, key: string, resources: Resources): Promise<ResizeResult> {
  const t = rc.target(key);
  return rc.locks.run(key, async () => {
    const record = await rc.requireRecord(t);
    const st = await rc.ourState(t);
    if (!isRunning(st)) {
      // Nothing runs: the new limits apply at the next start.
      await writeResources(t.cp, record, resources);
      return { limits: {}, deferred: [] };
    }
    const r = await resizeInPlace({
      runc: await rc.runc(),
      id: t.id,
      cgroup: await rc.cgroupOf(t.cp),
      wanted: resources,
      inForce: record.spec.resources,
      swapAccounting: (await rc.hostInfo()).swapAccounting,
    });
    const disk = await rc.disk.resizeLive(t.cp, record, resources);
    if (disk.sizeBytes === undefined) delete r.applied.diskBytes;
    else r.applied.diskBytes = r.limits.diskBytes = disk.sizeBytes;
    if (disk.deferred) r.deferred.push(disk.deferred);
    await writeResources(t.cp, record, r.applied);
    return { limits: r.limits, deferred: r.deferred };
  });
}

/** Record resources as applied (the spec hash follows the spec). */
async function writeResources(cp: ContainerPaths, record: AppliedRecord, resources: Resources): Promise<void> {
  const clean: Resources = {};
  if (resources.cpuMillis !== undefined) clean.cpuMillis = resources.cpuMillis;
  if (resources.memoryBytes !== undefined) clean.memoryBytes = resources.memoryBytes;
  if (resources.pids !== undefined) clean.pids = resources.pids;
  if (resources.diskBytes !== undefined) clean.diskBytes = resources.diskBytes;
  await writeJsonAtomic(cp.record, appliedRecord(record, record.createdAt, clean));
}

export async function updateNetwork(rc: RuncContext, key: string, opts: { repair: boolean }): Promise<NetworkStatus | undefined> {
  const t = rc.target(key);
  return rc.locks.run(key, async () => {
    const record = await rc.requireRecord(t);
    const st = await rc.ourState(t);
    const pid = st && isRunning(st) ? st.pid : undefined;
    if (!opts.repair || pid === undefined || record.spec.network !== 'bridge') return rc.net.update(t.id, record, opts.repair, pid);
    // A repair may give the running container a new veth (its eth0 deleted: a container with
    // NET_ADMIN can do that at will), which is a port of the bridge before its address and MAC
    // are walled (walls.ts enrolls it after the plugins' ADD; this kernel has no bridge meta
    // match to drop a port not enrolled yet). Its processes are paused (runc pause: the freezer)
    // and its kernel's own frames held (repair-hold.ts) until the repair is done, so nothing of
    // it crosses that gap. The marker says so to the next acetate, should this one die in
    // between (read-containers.ts ends both).
    const runc = await rc.runc();
    repairing.add(t.id); // this process's reads leave this pause alone (read-containers.ts)
    let held = false;
    let result: NetworkStatus | undefined;
    let failure: unknown;
    try {
      await writeSmallFile(repairPauseMarker(t.cp), `${pid}\n`);
      if (st!.status !== 'paused') await runc.pause(t.id); // paused already: an interrupted repair's
      await holdFrames(netnsOfPid(pid));
      held = true;
      result = await rc.net.update(t.id, record, opts.repair, pid);
    } catch (err) {
      failure = err;
    }
    try {
      // A hold that could not be made (one nft transaction: all or nothing) is not released.
      // One that cannot be released keeps the container paused (not running without a network,
      // nor with its frames unwalled): the marker stays and the deep look reports it
      // (read-containers.ts), so the repair is planned and retried.
      if (held) await releaseFrames(netnsOfPid(pid));
      await endRepairPause(rc, t.id, t.cp);
    } catch (err) {
      const what = failure ? `the repair failed (${failure instanceof Error ? failure.message : String(failure)}) and` : 'the repair was done but';
      throw new Error(`${t.key}: ${what} its hold could not be released: left paused until a later repair or read ends it`, { cause: err });
    } finally {
      repairing.delete(t.id);
    }
    if (failure) throw failure;
    return result;
  });
}

/** Resumes a container paused for a repair and removes the marker saying so. */
async function endRepairPause(rc: RuncContext, id: string, cp: ContainerPaths): Promise<void> {
  await (await rc.runc()).resume(id);
  await removePaths([repairPauseMarker(cp)]);
}

/**
 * A repair's pause and hold left by an acetate that died in it (or one that could not release
 * them), ended by the lock holder's read of the running container (`netns` its process's).
 * Under the container's lock: never beside a repair of it in this process.
 */
export async function endLeftRepair(rc: RuncContext, key: string, netns: string): Promise<void> {
  const t = rc.target(key);
  if (!existsNow(repairPauseMarker(t.cp))) return;
  await rc.locks.run(key, () => endLeftRepairLocked(rc, t.id, t.cp, netns));
}

/**
 * endLeftRepair by a caller that holds the container's lock: the start, with the namespace file
 * it will join (a stopped container's namespace persists, and a hold left in it with it).
 */
export async function endLeftRepairLocked(rc: RuncContext, id: string, cp: ContainerPaths, netns: string): Promise<void> {
  if (repairing.has(id) || !existsNow(repairPauseMarker(cp))) return;
  await releaseFrames(netns);
  await endRepairPause(rc, id, cp);
}

/** Ids whose repair (and pause) this process is running now. */
const repairing = new Set<string>();

/** Present while a repair keeps the container paused (updateNetwork). */
function repairPauseMarker(cp: ContainerPaths): string {
  return path.join(cp.runDir, 'paused-for-repair');
}

export async function recordApplied(rc: RuncContext, key: string, record: AppliedRecord): Promise<void> {
  const t = rc.target(key);
  await rc.locks.run(key, async () => {
    await rc.requireRecord(t);
    await writeJsonAtomic(t.cp.record, record);
  });
}
