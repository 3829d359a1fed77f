/**
 * The claims of the ranges a state dir's containers already had before claims existed (an upgrade),
 * or whose claim was lost: taken once per process, under the allocation locks (id-ranges.ts
 * importIdRecords).
 */
import path from 'node:path';
import { allClaimedBy, claimFree, type IdClaims } from './id-claims.js';
import { formatIdRange, rangesOverlap, type IdRange } from './id-pool.js';
import type { IdRecordOwner } from './id-records.js';
import { readMappedNamespaces, userNamespaceOfPidFile } from './mapped-ids.js';
import { holdsRange, rangesOf, readIds } from './ids-file.js';
import { stateDirOf, type IdRangeStore, type View } from './id-view.js';

/** allClaimedBy, with a claim that cannot be read taken as not (claimFor names it, as before). */
function claimedAlready(claims: IdClaims, owner: IdRecordOwner, ranges: readonly IdRange[]): boolean {
  try {
    return allClaimedBy(claims, owner, ranges);
  } catch {
    return false;
  }
}

/**
 * Under the locks: the ranges this state dir's containers' ids.json name, claimed where no live
 * owner claims them (containers made before claims). Read from each ids.json, not from the view,
 * which also holds what the records still name. A range another live owner claims is left to it:
 * the start of the container that names it is refused (id-range-held.ts). `thorough` (the upgrade's
 * claim of every range, until its marker is written): ranges a container already claims are
 * checked against the node's processes too, and one another container runs with is reported.
 */
export async function claimOwn(store: IdRangeStore, v: View, thorough: boolean): Promise<string[]> {
  if (!store.claims) return [];
  const stateDir = stateDirOf(store);
  const conflicts: string[] = [];
  // Read once, anew (a read of 10,000 processes' maps is 0.1-0.3 s): a range a process of another
  // container runs with is not claimed (two given one range before claims, one running unclaimed),
  // whatever claims say; this container's own are told apart by their user namespace, its init's.
  // Not thorough (an instance's first start in a process, once the marker is written): a range
  // already claimed by its owner is taken as its own, as at a start (id-range-held.ts).
  let mapped: ReturnType<typeof readMappedNamespaces> | undefined;
  for (const container of v.own.keys()) {
    const ranges = rangesOf(await readIds(path.join(store.containersDir, container)));
    if (!thorough && claimedAlready(store.claims, { stateDir, container }, ranges)) continue;
    mapped ??= readMappedNamespaces();
    const own = store.runContainersDir ? userNamespaceOfPidFile(path.join(store.runContainersDir, container, 'pid')) : undefined;
    const inUse = ranges.filter((r) => mapped!.some((n) => n.ns !== own && n.ranges.some((m) => rangesOverlap(m, r))));
    const taken = [
      ...inUse,
      ...(await claimFree(
        store.claims,
        { stateDir, container },
        ranges.filter((r) => !inUse.includes(r)),
        holdsRange,
      )),
    ];
    // namespace_name → namespace/name (a namespace has no '_').
    for (const r of taken) conflicts.push(`${container.replace('_', '/')}: ids ${formatIdRange(r)}`);
  }
  return conflicts;
}
