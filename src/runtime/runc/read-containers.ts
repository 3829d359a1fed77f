/**
 * Reading containers as they are: records, runc's state, conmon's files, cgroup limits, network
 * and disk. Everything here only reads, except what the node lock's holder alone may do on the
 * way (sweep temporary dirs killed acetates left, collect network garbage, put back run-dir files
 * removed by hand): `acetate get` or `plan` next to a busy `acetate run` changes nothing.
 */
import { readdir } from 'node:fs/promises';
import { containerKey } from '../../api/types.js';
import type { ActualContainer, AppliedRecord } from '../runtime.js';
import pLimit from 'p-limit';
import { readLimits } from './cgroups.js';
import { isOurs, processInfo } from './observe.js';
import type { RuncContext } from './runc-context.js';
import type { RuncState } from './runc-state.js';
import { readRecord, readStatus, restartCountOf } from './store.js';
import { sweepTempDirs } from './temp-dirs.js';
import { readIds, recordedRange } from '../walls/id-ranges.js';
import { loadReadCache, saveReadCache } from './read-cache.js';
import { leftRepairProblem } from './repair-pause.js';
import { specHashMatches } from '../applied-record.js';
import type { NetworkStatus } from '../network/driver.js';

function withProblem(network: NetworkStatus | undefined, problem: string | undefined): NetworkStatus | undefined {
  return network && problem ? { ...network, problem } : network;
}

/** One container from its record and runc state; `deep`: its network is checked in depth. */
async function actualOf(rc: RuncContext, id: string, record: AppliedRecord, st: RuncState | undefined, deep = false): Promise<ActualContainer> {
  const cp = rc.pathsOf(id);
  const status = await readStatus(cp.status);
  // The lock holder also puts back run-dir files removed by hand under a supervised process.
  const cgroup = await rc.cgroupOf(cp);
  const process = await processInfo(cp, st, status, cgroup, { repair: rc.lockHeld });
  const key = containerKey(record.namespace, record.name);
  // A repair's pause and hold left by an acetate that died in it (or could not end them): not
  // ended here (its new port may not be walled yet) but reported to the lock holder, the one
  // that repairs, so the repair is planned again and ends them.
  const leftRepair = rc.lockHeld && process.state === 'running' ? leftRepairProblem(id, cp) : undefined;
  const limits = process.state === 'running' ? await readLimits(cgroup) : {};
  const disk = await rc.disk.usage(cp, record);
  if (disk && process.state === 'running') limits.diskBytes = disk.sizeBytes;
  // A container of the node's ids may still have files of its earlier range (until its start re-owns them): no range of its own.
  const idRange = record.spec.security.hostUsers === false ? recordedRange(await readIds(cp.dir)) : undefined;
  return {
    key,
    namespace: record.namespace,
    name: record.name,
    id,
    applied: record,
    appliedHashMatches: specHashMatches(record),
    process,
    limits,
    restartCount: restartCountOf(status),
    // The lock holder (`acetate run`'s 2 s poll) also looks for the port rules: one iptables listing for all.
    ...(record.spec.network === 'bridge' ? { network: withProblem(await rc.net.observe(id, process.state === 'running', deep, rc.lockHeld), leftRepair) } : {}),
    ...(disk ? { disk } : {}),
    ...(idRange ? { idRange: { hostID: idRange.hostID, size: idRange.size } } : {}),
  };
}

/**
 * Reads the records, ONE `runc list`, and cgroup files of running containers; no per-container
 * process. With keys, only those containers (runc's state read for each of them alone).
 */
export async function listContainers(rc: RuncContext, keys?: Iterable<string>): Promise<ActualContainer[]> {
  let ids: string[];
  if (keys) ids = [...new Set([...keys].map((k) => rc.target(k).id))];
  else {
    try {
      ids = await readdir(rc.paths.containersDir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new Error(`cannot list ${rc.paths.containersDir}`, { cause: err });
    }
  }
  // What an earlier process parsed of these files (each entry checked against its file: read-cache.ts).
  loadReadCache(rc.paths);
  const temp = ids.filter((n) => n.startsWith('.'));
  if (temp.length) {
    await sweepTempDirs(rc, temp); // only in the process that holds the node lock
    ids = ids.filter((n) => !n.startsWith('.'));
  }
  const limit = pLimit(64);
  const found = await limit.map(ids.sort(), async (id) => {
    const record = await readRecord(rc.pathsOf(id).record);
    return record ? { id, record } : undefined;
  });
  const records = found.filter((r): r is { id: string; record: AppliedRecord } => r !== undefined);
  // Like the sweep above, only in the process that holds the node lock: a read-only command changes nothing.
  if (rc.lockHeld) await rc.net.collectGarbageOnce();
  if (records.length === 0) return [];
  const runc = await rc.runc();
  const listed = keys ? await limit.map(records, ({ id }) => runc.state(id)) : await runc.list();
  const states = new Map(listed.flatMap((s) => (s ? [[s.id, s] as const] : [])));
  const out = await limit.map(records, ({ id, record }) => {
    const st = states.get(id);
    return actualOf(rc, id, record, st && isOurs(st, record.namespace, record.name) ? st : undefined);
  });
  // A full list by the lock holder (apply, run's resync) leaves what it parsed for the next get or plan.
  if (rc.lockHeld && !keys) await saveReadCache(rc.paths);
  return out;
}

export async function getContainer(rc: RuncContext, key: string): Promise<ActualContainer | undefined> {
  const t = rc.target(key);
  const record = await readRecord(t.cp.record);
  if (!record) return undefined;
  const st = await (await rc.runc()).state(t.id);
  // One container at a time (the loop's reconcile of a key): its network is checked in depth.
  return actualOf(rc, t.id, record, st && isOurs(st, t.namespace, t.name) ? st : undefined, true);
}
