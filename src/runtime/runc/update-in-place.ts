/**
 * Changes to a container that keep its process: limits resized in place (cgroups and the private
 * area's filesystem), ports published again or a broken network repaired, the record rewritten.
 */
import type { Resources } from '../../api/types.js';
import type { AppliedRecord, ResizeResult } from '../runtime.js';
import type { NetworkStatus } from '../network/driver.js';
import { isRunning } from './observe.js';
import type { ContainerPaths } from './paths.js';
import { resizeInPlace } from './resize.js';
import type { RuncContext } from './runc-context.js';
import { writeJsonAtomic } from '../../util/json-file.js';
import { appliedRecord } from '../applied-record.js';
import { whilePausedAndHeld } from './repair-pause.js';

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
    // Paused and held while its network is repaired: a new veth is a port of the bridge before it is walled.
    return whilePausedAndHeld(rc, t, pid, () => rc.net.update(t.id, record, opts.repair, pid));
  });
}

export async function recordApplied(rc: RuncContext, key: string, record: AppliedRecord): Promise<void> {
  const t = rc.target(key);
  await rc.locks.run(key, async () => {
    await rc.requireRecord(t);
    await writeJsonAtomic(t.cp.record, record);
  });
}
