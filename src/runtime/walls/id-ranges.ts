/**
 * Each unprivileged container's own range of node ids, allocated from the node's pool (id-pool.ts)
 * and recorded with the container, in <containerDir>/ids.json:
 *
 *   { "base": 1000065536, "size": 65536, "range": { "hostID": 1000065536, "size": 65536 } }
 *
 * `range`: the ids the container runs with (absent: the node's own ids); `base`: who owns the
 * private area's files now (0: the node's ids). They differ between a create that changed the
 * mapping and the start that re-owns the private area (userns.ts preparePrivateArea).
 *
 * The range lives and dies with the container dir: a destroy deletes the dir (so the range is
 * free again, for the next allocation to reuse), a replace keeps it with the private area (so the
 * range stays, and the files it owns stay the container's). The pool is the node's, so the use of
 * it is recorded for the node too (id-records.ts: one file every instance shares, each record
 * naming its owner): an allocation takes the lowest range that neither another instance's live
 * record nor a container of this state dir (its ids.json: that also imports what an acetate before
 * node-wide records gave out) holds, and writes this state dir's records back, dropping those
 * whose owner is gone. What it knows of both is kept in memory between allocations (View below:
 * read once per process, then checked by a stat of the records file and of the containers dir),
 * so an allocation is not a read of every container's ids.json (id-view.ts). All under the
 * records' flock and, inside it, the node's (the default records' lock, whatever the records file:
 * one lock with the default records; both kept for a burst of allocations, id-lock.ts) and a mutex
 * of this process (concurrent creates of the loop): two containers never get one range. Both
 * ranges and bases count as used: files owned by a range not yet re-owned are still its. Each
 * range given is also claimed node-wide (id-claims.ts), so that instances given different records
 * files (ACETATE_ID_RECORDS) still never share one.
 */
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { holdOf, releaseIfIdle, withIdRecordsLock } from './id-lock.js';
import { compactIdRecordsSync, readIdRecordsSync, refuseUntrustedRecordsDir, type IdRecord, type IdRecordOwner } from './id-records.js';
import { formatIdRange, IdPoolError, lowestFreeRange, RANGE_SIZE, rangeInPool, rangesOverlap, type IdRange } from './id-pool.js';
import { claimedRangesForPlan, claimedStarts, claimFree, dropClaims, liveClaimsOverlapping, nodeLockOf, pruneStale, type IdClaims } from './id-claims.js';
import { forgetMappedRanges, mappedRanges } from './mapped-ids.js';
import { holdsRange, readIds, recordedRange, rangesOf, writeIds, type IdsFile } from './ids-file.js';
import { claimOwn } from './id-claim-own.js';
import { currentView, recordChange, stateDirOf, syncRecords, views, viewKey, type IdRangeStore, type View } from './id-view.js';

export { IDS_FILE, idsFileOf, readIds, recordedRange, type IdsFile } from './ids-file.js';
export type { IdRangeStore } from './id-view.js';

/**
 * Runs `fn` under the records' lock (made beside them once their dir is known to be root's alone)
 * and, with claims, the node's lock inside it. Always in this order, so that no two processes wait
 * on each other; the records' lock is kept (not replaced by the node's) because an acetate from
 * before claims, still running during an upgrade, takes only it.
 */
function withAllocationLocks<T>(store: IdRangeStore, fn: () => Promise<T>): Promise<T> {
  refuseUntrustedRecordsDir(store.recordsFile);
  const records = `${store.recordsFile}.lock`;
  const node = store.claims && nodeLockOf(store.claims);
  // A node lock kept from an earlier start, while the records' lock is to be waited for: let go
  // first (another process may hold the records' lock and wait for the node's).
  if (node && node !== records && holdOf(records) === undefined) releaseIfIdle(node);
  return withIdRecordsLock(records, () => (node && node !== records ? withIdRecordsLock(node, fn) : fn()), { beforeRelease: compact(store) });
}

/**
 * Under the locks: `owner`'s claims brought to `now`. Claimed before its ids.json names a new range
 * (so a failed claim leaves no range unclaimed); let go only after (so nothing it still names is
 * unclaimed). Returns what another live owner claims (id-claims.ts claimFree).
 */
async function claimFor(store: IdRangeStore, owner: IdRecordOwner, now: readonly IdRange[]): Promise<IdRange[]> {
  return store.claims ? claimFree(store.claims, owner, now, holdsRange) : [];
}

function unclaimGone(store: IdRangeStore, owner: IdRecordOwner, before: readonly IdRange[], now: readonly IdRange[]): void {
  if (store.claims)
    dropClaims(
      store.claims,
      owner,
      before.filter((b) => !now.some((n) => n.hostID === b.hostID)),
    );
}

/** What this process does as it lets go of the lock: the journal folded into the records. */
const compact = (store: IdRangeStore) => () => compactIdRecordsSync(store.recordsFile);

const imported = new Map<string, Promise<string[]>>();

/**
 * Once per process and state dir: this state dir's ranges into the node's records, with no range
 * to give (a start of a container that has its range). An instance upgraded from per-state-dir
 * records, whose containers all have ranges, would otherwise show them to the others only at its
 * next create. `thorough`: every range checked against the node's processes, also those its
 * container already claims (claimExistingRanges: its conflicts are what the operator is told).
 */
export function importIdRecords(store: IdRangeStore, thorough = false): Promise<string[]> {
  const key = viewKey(store);
  let p = imported.get(key);
  if (!p) {
    p = withAllocationLocks(store, async () => {
      const v = await currentView(store);
      await syncRecords(store, v);
      return claimOwn(store, v, thorough);
    });
    p.catch(() => imported.delete(key)); // tried again at the next start
    imported.set(key, p);
  }
  return p;
}

/**
 * Once per boot and state dir (`marker`, in the run dir): every container's ranges claimed, from
 * the lock holder's apply or run (sweepLeftovers). Without it, containers an acetate from before
 * claims made, running and never started again, stayed unclaimed, and an instance with another
 * records file gave their ranges out.
 */
export async function claimExistingRanges(store: IdRangeStore, marker: string): Promise<string[]> {
  if (!store.claims || existsSync(marker)) return [];
  imported.delete(viewKey(store)); // each apply or run until done: the other owner may be gone since
  const conflicts = await importIdRecords(store, true);
  // Done only when every range is claimed: one another live owner claims (two containers given one
  // range before claims existed) is tried again by the next apply or run, once that owner is gone.
  if (!conflicts.length) writeFileSync(marker, 'claimed\n', { mode: 0o600 });
  return conflicts;
}

/** Other instances' records among the node's (by the parsed records' identity: read again only when the file changed). */
const othersOf = new WeakMap<readonly IdRecord[], Map<string, IdRecord[]>>();

/**
 * Ranges held by other instances' live containers, as the node's records and claims say (plan's
 * prediction; no lock). Asked at every reconcile of the loop: its cost is that of the other instances'
 * records (their containers' dirs looked at), not of this instance's thousands.
 */
export function rangesHeldElsewhere(store: IdRangeStore): IdRange[] {
  const stateDir = stateDirOf(store);
  const records = readIdRecordsSync(store.recordsFile);
  let byStateDir = othersOf.get(records);
  if (!byStateDir) othersOf.set(records, (byStateDir = new Map()));
  let others = byStateDir.get(stateDir);
  if (!others) {
    const resolved = new Map<string, string>(); // one path.resolve per state dir named, not per record
    const resolve = (d: string): string => resolved.get(d) ?? resolved.set(d, path.resolve(d)).get(d)!;
    byStateDir.set(stateDir, (others = records.filter((r) => resolve(r.owner.stateDir) !== stateDir)));
  }
  const recorded = others.filter((r) => existsSync(path.join(r.owner.stateDir, 'containers', r.owner.container))).flatMap((r) => r.ranges);
  // Every claim counts too (this instance's own among them: they are held anyway), as the allocator
  // counts claims the records do not show: plan announces the range apply gives.
  return store.claims ? [...recorded, ...claimedRangesForPlan(store.claims)] : recorded;
}

/**
 * Gives the container in `dir` the ids it is to run with, recorded in its ids.json: for
 * `unprivileged`, the range it has when that is in the pool and no other container's, else
 * `preferred` (the range plan announced) when free, else the lowest free range; otherwise none
 * (its files stay owned by the range until the next start re-owns them). Throws when the pool is full.
 */
export async function assignIdRange(store: IdRangeStore, dir: string, unprivileged: boolean, preferred?: IdRange): Promise<IdRange | undefined> {
  // The node's ids and no range recorded (most creates with hostUsers: true): nothing to give or
  // free, so no lock. The container's own operations never interleave.
  if (!unprivileged && !(await readIds(dir))?.range) return undefined;
  return withAllocationLocks(store, async () => {
    const self = path.basename(dir);
    const owner = { stateDir: stateDirOf(store), container: self };
    const ids = await readIds(dir);
    const had = recordedRange(ids);
    let v = await currentView(store);
    if (!unprivileged) {
      const now: IdsFile | undefined = ids ? { base: ids.base, size: ids.size } : undefined;
      if (ids?.range) await writeIds(dir, now!);
      v.own.set(self, rangesOf(now));
      await recordChange(store, v, self);
      unclaimGone(store, owner, rangesOf(ids), rangesOf(now));
      return undefined;
    }
    // Claims of other owners the records do not show (an instance given another records file):
    // taken as held without a look at each (cheap); a stale one among them is removed once the
    // pool looks full. The range settled on is then checked claim by claim.
    let own = ownStarts(v);
    let elsewhere = store.claims ? claimedElsewhere(store.claims, own) : [];
    // And ranges live processes run with (mapped-ids.ts), whatever records and claims say.
    let mapped = store.claims ? notOwn(mappedRanges(), own) : [];
    const liveClaimed: IdRange[] = [];
    const pick = (view: View): IdRange | undefined => {
      const used: IdRange[] = [...liveClaimed, ...elsewhere, ...mapped, ...view.others.flatMap((r) => r.ranges)];
      for (const [n, rs] of view.own) if (n !== self) used.push(...rs);
      const free = (r: IdRange) => rangeInPool(r, store.pool) && !used.some((u) => rangesOverlap(u, r));
      return had && free(had) ? had : preferred && free(preferred) ? preferred : lowestFreeRange(store.pool, used);
    };
    let range = pick(v);
    if (!range || (had && range !== had) || (preferred && !had && range !== preferred)) {
      // Not what was asked for, or none: look again with everything read anew before settling.
      v = await currentView(store, true);
      if (store.claims) {
        own = ownStarts(v);
        forgetMappedRanges(); // anew too: a process may have ended since the last read
        mapped = notOwn(mappedRanges(), own);
        await pruneStale(store.claims, inPool(store, elsewhere), holdsRange);
        elsewhere = claimedElsewhere(store.claims, own);
      }
      range = pick(v);
    }
    for (let held; range && store.claims && (held = await liveClaimsOverlapping(store.claims, range, owner, holdsRange, { prune: true })).length;) {
      liveClaimed.push(...held.map((h) => h.range));
      range = pick(v);
    }
    if (!range) {
      throw new IdPoolError(
        `no free range of ${RANGE_SIZE} ids left in the pool ${formatIdRange(store.pool)} (${Math.floor(store.pool.size / RANGE_SIZE)} ranges, all held): widen --userns-pool, or destroy a container`,
      );
    }
    range = { hostID: range.hostID, size: range.size };
    const now: IdsFile = { base: ids?.base ?? 0, size: ids?.size ?? RANGE_SIZE, range };
    await claimFor(store, owner, rangesOf(now));
    if (ids?.range?.hostID !== range.hostID || ids.range.size !== range.size) await writeIds(dir, now);
    v.own.set(self, rangesOf(now));
    await recordChange(store, v, self);
    unclaimGone(store, owner, rangesOf(ids), rangesOf(now));
    return range;
  });
}

/** The first ids of this state dir's containers' ranges, as the view has them. */
function ownStarts(v: View): ReadonlySet<number> {
  const own = new Set<number>();
  for (const rs of v.own.values()) for (const r of rs) own.add(r.hostID);
  return own;
}

/** Claims of the node not on a range of this state dir's containers. */
function claimedElsewhere(claims: IdClaims, own: ReadonlySet<number>): IdRange[] {
  const out: IdRange[] = [];
  for (const hostID of claimedStarts(claims)) if (!own.has(hostID)) out.push({ hostID, size: RANGE_SIZE });
  return out;
}

/** `ranges` but those starting where a range of this state dir's containers does (their own: a container keeps its range). */
function notOwn(ranges: readonly IdRange[], own: ReadonlySet<number>): IdRange[] {
  return ranges.filter((r) => !own.has(r.hostID));
}

/** The first ids of the claims among `ranges` that overlap the pool: the only ones an allocation from it needs freed. */
function inPool(store: IdRangeStore, ranges: readonly IdRange[]): number[] {
  return ranges.filter((r) => rangesOverlap(r, store.pool)).map((r) => r.hostID);
}

/**
 * At a destroy, once the container's dir is gone (renamed away): its ranges leave the node's
 * records now, not at the next allocation that finds the dir gone (every reader checks the owner's
 * dir, so the range was free already; the file no longer names it either). `held`: what its
 * ids.json recorded before the dir went; nothing recorded, no lock.
 */
export async function releaseIdRanges(store: IdRangeStore, dir: string, held: IdsFile | undefined): Promise<void> {
  if (rangesOf(held).length === 0) return;
  const self = path.basename(dir);
  await withAllocationLocks(store, async () => {
    const v = await currentView(store);
    v.own.delete(self);
    await recordChange(store, v, self);
    unclaimGone(store, { stateDir: stateDirOf(store), container: self }, rangesOf(held), []);
  });
}

/** Records who owns the private area's files now, keeping the range (preparePrivateArea, after a re-own). */
export async function recordOwner(dir: string, base: number, size: number, claims?: IdClaims): Promise<void> {
  const ids = await readIds(dir);
  const now: IdsFile = { base, size, ...(ids?.range ? { range: ids.range } : {}) };
  const gone = rangesOf(ids).filter((r) => !rangesOf(now).some((n) => n.hostID === r.hostID));
  if (claims && gone.length) {
    // The files' earlier owner's claim goes with the write, under the node's lock (claims change only under it).
    const owner = { stateDir: path.dirname(path.dirname(path.resolve(dir))), container: path.basename(dir) };
    await withIdRecordsLock(nodeLockOf(claims), async () => {
      await writeIds(dir, now);
      dropClaims(claims, owner, gone);
    });
  } else await writeIds(dir, now);
  // The files' earlier owner is free now: the views of this state dir hold only what ids.json does.
  const containersDir = path.resolve(path.dirname(dir));
  for (const [key, v] of views) if (key.endsWith(`\0${containersDir}`) && v.own.has(path.basename(dir))) v.own.set(path.basename(dir), rangesOf(now));
}
