/**
 * Before each start of a container with a range: the range must be no other live owner's, in the
 * node's records or its claims (id-claims.ts), and is claimed for it. The backstop for a record
 * rewritten anyway, and for ranges two containers were given before claims existed.
 */
import path from 'node:path';
import { TransientError } from '../../contracts/errors.js';
import { ownerExists, readIdRecords } from './id-records.js';
import { allClaimedBy, claimFree, liveClaimsOverlapping, nodeLockOf } from './id-claims.js';
import { forgetMappedRanges, mappedRanges } from './mapped-ids.js';
import { withIdRecordsLock } from './id-lock.js';
import { formatIdRange, rangesOverlap, type IdRange } from './id-pool.js';
import { holdsRange, idsFileOf, rangesOf, readIds } from './ids-file.js';
import { stateDirOf, type IdRangeStore } from './id-view.js';

/**
 * A container's ids.json names a range another live owner holds: it is not started. Transient:
 * tried again with back-off; it starts once the other owner is gone, or once it has a free range
 * (plan's replace, when the other is a container of this state dir; by hand otherwise).
 */
export class IdRangeHeldError extends TransientError {}

/**
 * Before each start of a container with a range: the range its ids.json names must be no other
 * live owner's in the node's records (another instance's container, or another of this state dir
 * as last recorded). ids.json is root's (userns.ts closeContainerDir); this is the backstop for a
 * record rewritten anyway (an earlier acetate left the dir to the range's root, which could move
 * itself into a neighbour's range at the next restart). Refused, never started: a range shared
 * by two containers gives each the other's files and processes.
 */
export async function checkRangeHeld(store: IdRangeStore, dir: string, range: IdRange): Promise<void> {
  const stateDir = stateDirOf(store);
  const self = path.basename(dir);
  // No flock: the file is replaced whole (writeJsonAtomic), so a read sees one version of it.
  for (const r of await readIdRecords(store.recordsFile)) {
    if (path.resolve(r.owner.stateDir) === stateDir && r.owner.container === self) continue;
    if (!r.ranges.some((u) => rangesOverlap(u, range))) continue;
    if (!(await ownerExists(r.owner))) continue;
    throw heldError(dir, range, `node records ${store.recordsFile}`, path.resolve(r.owner.stateDir) === stateDir);
  }
}

/**
 * The same for the node's claims (id-claims.ts), and the container's own claim made, at every
 * start: a container whose claim was skipped (another live owner held the range then: two
 * containers given one range before claims existed) is claimed once the other is gone, not started
 * unclaimed by a loop that tried once. After this instance's own ranges were claimed
 * (importIdRecords), so that two instances starting at once find one claim, and one of them is
 * refused.
 *
 * Its own claims there (every start but the first after a create or an upgrade): a read of them,
 * no lock and no listing (a `flock` process blocks the loop's thread for 95-150 ms under load; a
 * listing of 2,500 claims costs ~1 ms).
 * Otherwise under the node's lock: refused when another live owner claims the range, or when a
 * process runs with it (mappedNow) though no live claim says so.
 */
export async function claimRangeForStart(store: IdRangeStore, dir: string, range: IdRange): Promise<void> {
  const claims = store.claims;
  if (!claims) return;
  const stateDir = stateDirOf(store);
  const owner = { stateDir, container: path.basename(dir) };
  const own = rangesOf(await readIds(dir));
  if (allClaimedBy(claims, owner, own)) return;
  await withIdRecordsLock(nodeLockOf(claims), async () => {
    const [claimed] = await liveClaimsOverlapping(claims, range, owner, holdsRange, { prune: true });
    if (claimed)
      throw heldError(dir, range, `node claim ${path.join(claims.dir, String(claimed.range.hostID))}`, path.resolve(claimed.owner.stateDir) === stateDir);
    if (mappedNow(range)) throw heldError(dir, range, 'a live process runs with it (/proc/*/uid_map)', false);
    await claimFree(claims, owner, own, holdsRange);
  });
}

/**
 * Whether a live process runs with ids of `range`: mappedRanges (a full read of /proc at most
 * every MAPPED_TTL_MS, in between the processes not seen before), and a read anew before saying
 * yes (the process may have been this container's last one, just ended). Only for a start whose
 * range is not claimed yet (after an upgrade, or a create that failed between its allocation and
 * its claim): a full read there cost 100-140 ms of the loop's thread with 10,000 processes.
 */
function mappedNow(range: IdRange): boolean {
  if (!mappedRanges().some((m) => rangesOverlap(m, range))) return false;
  forgetMappedRanges();
  return mappedRanges().some((m) => rangesOverlap(m, range));
}

/**
 * The refusal names the range and where it is recorded, not who holds it: in Kubernetes mode the
 * message reaches the Container's status, and the holder may be another tenant's container.
 */
function heldError(dir: string, range: IdRange, where: string, sameInstance: boolean): IdRangeHeldError {
  const how = sameInstance
    ? 'plan replaces one of the two onto a free range'
    : 'it starts once that container is gone; to give it a free range now, re-create it, or apply it once with hostUsers: true and again without (its files are re-owned)';
  return new IdRangeHeldError(`${idsFileOf(dir)}: range ${formatIdRange(range)} is held by another live container of the node (${where}); not started: ${how}`);
}
