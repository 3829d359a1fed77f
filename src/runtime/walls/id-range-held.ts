/**
 * Before each start of a container with a range: the range must be no other live owner's, in the
 * node's records or its claims (id-claims.ts). The backstop for a record rewritten anyway.
 */
import path from 'node:path';
import { TransientError } from '../../contracts/errors.js';
import { ownerExists, readIdRecords, type IdRecordOwner } from './id-records.js';
import { liveClaimsOverlapping } from './id-claims.js';
import { formatIdRange, rangesOverlap, type IdRange } from './id-pool.js';
import { holdsRange, idsFileOf } from './ids-file.js';
import type { IdRangeStore } from './id-ranges.js';

/**
 * A container's ids.json names a range another live owner holds: it is not started (checkRangeHeld).
 * Transient: tried again with back-off; it starts once the other owner is gone, or once plan's
 * replace (the range is another's) gave it a free one.
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
  const stateDir = path.dirname(path.resolve(store.containersDir));
  const self = path.basename(dir);
  // No flock: the file is replaced whole (writeJsonAtomic), so a read sees one version of it.
  for (const r of await readIdRecords(store.recordsFile)) {
    if (path.resolve(r.owner.stateDir) === stateDir && r.owner.container === self) continue;
    if (!r.ranges.some((u) => rangesOverlap(u, range))) continue;
    if (!(await ownerExists(r.owner))) continue;
    throw heldError(dir, range, r.owner, `node records ${store.recordsFile}`);
  }
  if (!store.claims) return;
  const [claimed] = await liveClaimsOverlapping(store.claims, range, { stateDir, container: self }, holdsRange);
  if (claimed) throw heldError(dir, range, claimed.owner, `node claim ${path.join(store.claims.dir, String(claimed.range.hostID))}`);
}

function heldError(dir: string, range: IdRange, owner: IdRecordOwner, where: string): IdRangeHeldError {
  return new IdRangeHeldError(
    `${idsFileOf(dir)}: range ${formatIdRange(range)} is held by ${path.join(owner.stateDir, 'containers', owner.container)} ` +
      `(${where}); not started: replace or re-create this container to give it a free range`,
  );
}
