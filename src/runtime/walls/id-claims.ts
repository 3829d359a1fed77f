/**
 * The node's claims on id ranges: one small file per range held, <dir>/<hostID>, naming its owner
 * as a record does ({ "owner": { "stateDir": …, "container": … } }).
 *
 * Why, beside the records (id-records.ts): the records are shared only by the instances given the
 * same records file (ACETATE_ID_RECORDS). Two instances given two files each read only their own
 * and handed out one range twice: two tenants' roots one node user, each owning the other's files
 * (a hostile tester's finding). The claims' place is not a setting: every acetate of the node uses
 * /var/lib/acetate/id-claims, and every allocation takes the node's lock whatever its records file:
 * the default records file's lock, /var/lib/acetate/node-id-ranges.json.lock (with the default
 * records, the one lock every acetate takes, those before claims too: one `flock` process per
 * burst, not two), inside its records' own when those are another file (id-ranges.ts). Claims
 * are written and removed only under the node's lock; they are read without it by a start whose
 * own claim is already there (id-range-held.ts) and by plan. (Code may pass other places: the
 * allocator's tests.)
 *
 * A claim is live while its owner's container dir exists and its ids.json still names the range
 * (the range it runs with, or the owner of its private area's files not yet re-owned; an ids.json
 * that cannot be read counts as naming it): the claim of a destroyed container (removed at the
 * destroy; left by a crash) or of a range given up is removed by the allocation that meets it.
 * Claims are compared by overlap, not by name, so pools cut on other boundaries are kept apart too.
 * The dir is root's, 0700, and every claim is read as the records are: a plain file, root's, bounded.
 */
import { mkdirSync, readdirSync, realpathSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { writeFileAtomicSync } from '../../util/small-file.js';
import { readTrustedFileSync, refuseUntrustedDirSync } from '../../util/trusted-file.js';
import { IdPoolError, RANGE_SIZE, rangesOverlap, type IdRange } from './id-pool.js';
import { DEFAULT_ID_RECORDS, type IdRecordOwner } from './id-records.js';
import { holdOf } from './id-lock.js';
import { readMappedRanges } from './mapped-ids.js';

export interface IdClaims {
  /** One file per range held, named by its first id. */
  dir: string;
  /** The node's allocation lock (a flock, id-lock.ts), taken inside the records' own. */
  lockFile: string;
}

export const NODE_ID_CLAIMS: IdClaims = { dir: '/var/lib/acetate/id-claims', lockFile: `${DEFAULT_ID_RECORDS}.lock` };

/** Whether `owner`'s container still holds the range starting at hostID (its ids.json; ids-file.ts). */
export type HoldsRange = (owner: IdRecordOwner, hostID: number) => Promise<boolean>;

const TRUST = {
  what: "the node's claim on an id range",
  maxBytes: 8192,
  error: (message: string, cause?: unknown) => new IdPoolError(message, cause === undefined ? undefined : { cause }),
};

/** A claim's name: its first id (a write's temp file has another). */
const CLAIM_NAME = /^\d{1,10}$/;

const claimFile = (claims: IdClaims, hostID: number): string => path.join(claims.dir, String(hostID));

/**
 * A state dir as claims name it: its real path, so that two spellings of one dir (a symlink) are
 * one owner. Not remembered: a path can be made a symlink to another dir while a process runs, and
 * it is resolved only for the few claims a look meets.
 */
function canonicalDir(d: string): string {
  try {
    return realpathSync.native(d);
  } catch {
    return path.resolve(d); // gone: compared as spelled
  }
}

/**
 * A claim (`stored`, as written: its state dir's real path then) names `self`. The stored path is
 * not resolved again: a path that has become a symlink to another dir since (a state dir copied
 * and the old path pointed at the copy) names the dir it named, not the copy.
 */
export const sameOwner = (stored: IdRecordOwner, self: IdRecordOwner): boolean =>
  stored.container === self.container && stored.stateDir === canonicalDir(self.stateDir);

/** The owner the claim on the range at hostID names; undefined when none. Throws (IdPoolError naming the file) on one that is not root's alone or malformed: never read as free. */
export function readClaim(claims: IdClaims, hostID: number): IdRecordOwner | undefined {
  const file = claimFile(claims, hostID);
  const text = readTrustedFileSync(file, TRUST);
  if (text === undefined) return undefined;
  let owner: IdRecordOwner | undefined;
  try {
    owner = (JSON.parse(text) as { owner?: IdRecordOwner }).owner;
  } catch (err) {
    // The parser's words quote the file: left to `cause`, not printed.
    throw new IdPoolError(`${file}: not JSON: remove it once no container of the node runs with ids ${hostID}…`, { cause: err });
  }
  if (typeof owner?.stateDir !== 'string' || typeof owner.container !== 'string' || !path.isAbsolute(owner.stateDir)) {
    throw new IdPoolError(`${file}: no owner { stateDir, container } in it: remove it once no container of the node runs with ids ${hostID}…`);
  }
  return { stateDir: owner.stateDir, container: owner.container };
}

/**
 * Every range of `ranges` is claimed by `owner` (a read of each claim: no lock, no listing).
 * Claims of live owners never overlap (each is written under the node's lock after a look at the
 * live ones it would overlap): a range whose claim names its owner is no one else's.
 */
export function allClaimedBy(claims: IdClaims, owner: IdRecordOwner, ranges: readonly IdRange[]): boolean {
  return ranges.every((r) => {
    const o = readClaim(claims, r.hostID);
    return o !== undefined && sameOwner(o, owner);
  });
}

/** A claim's temp file (small-file.ts writeFileAtomicSync), left by a writer killed mid-write. */
const LEFT_TEMP = /^\d{1,10}\.\d+-\d+-[0-9a-f]{8}\.tmp$/;

/** The first ids of every claim, listed now; `sweep` (under the node's lock, so no writer is mid-write): temp files a killed writer left are removed. */
function listStarts(claims: IdClaims, sweep = false): number[] {
  let names: string[];
  try {
    names = readdirSync(claims.dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new IdPoolError(`${claims.dir}: cannot list the node's id claims (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
  }
  if (sweep) for (const n of names) if (LEFT_TEMP.test(n)) rmSync(path.join(claims.dir, n), { force: true });
  return names.filter((n) => CLAIM_NAME.test(n)).map(Number);
}

/** The listing as this process last saw it under the lock, by hold (id-lock.ts holdOf): claims change only under the lock. */
const listings = new Map<string, { hold: number; starts: Set<number> }>();

/**
 * The first ids of every claim. Under the node's lock, listed once per hold and kept up to date by
 * this process's own writes (an allocation is not a listing of thousands); without it, listed now.
 */
export function claimedStarts(claims: IdClaims): ReadonlySet<number> {
  const hold = holdOf(claims.lockFile);
  const had = listings.get(claims.dir);
  if (hold !== undefined && had?.hold === hold) return had.starts;
  const starts = new Set(listStarts(claims, hold !== undefined));
  if (hold !== undefined) listings.set(claims.dir, { hold, starts });
  return starts;
}

const byStamp = new Map<string, { stamp: string; ranges: IdRange[] }>();

/**
 * Every claim as a range, for plan's prediction (no lock; its cost is the dir's stat while
 * nothing changes: the loop asks at every reconcile). A change within one tick of the dir's mtime
 * may be missed: a prediction only, which the allocation checks.
 */
export function claimedRangesForPlan(claims: IdClaims): IdRange[] {
  let stamp: string;
  try {
    const st = statSync(claims.dir, { bigint: true });
    stamp = `${st.ino}:${st.mtimeNs}:${st.ctimeNs}`;
  } catch {
    return [];
  }
  const had = byStamp.get(claims.dir);
  if (had?.stamp === stamp) return had.ranges;
  let ranges: IdRange[];
  try {
    ranges = listStarts(claims).map((hostID) => ({ hostID, size: RANGE_SIZE }));
  } catch {
    return []; // unreadable: the allocation says why
  }
  byStamp.set(claims.dir, { stamp, ranges });
  return ranges;
}

function noteChange(claims: IdClaims, hostID: number, present: boolean): void {
  const had = listings.get(claims.dir);
  if (!had) return;
  if (present) had.starts.add(hostID);
  else had.starts.delete(hostID);
}

/**
 * Claims of live owners other than `self` on ranges overlapping `range`, whatever their start
 * (--userns-pool FIRST is any id ≥ 65536, so two pools need not be cut on the same boundaries).
 * `prune`, under the node's lock only: stale claims met on the way are removed.
 */
export async function liveClaimsOverlapping(
  claims: IdClaims,
  range: IdRange,
  self: IdRecordOwner,
  holds: HoldsRange,
  opts: { prune?: boolean } = {},
): Promise<{ range: IdRange; owner: IdRecordOwner }[]> {
  const out: { range: IdRange; owner: IdRecordOwner }[] = [];
  const mapped = onceMapped();
  const starts = claimedStarts(claims);
  for (const hostID of opts.prune ? [...starts] : starts) {
    const claimed = { hostID, size: RANGE_SIZE };
    if (!rangesOverlap(claimed, range)) continue;
    const owner = readClaim(claims, hostID);
    if (!owner || sameOwner(owner, self)) continue;
    if (await holds(owner, hostID)) out.push({ range: claimed, owner });
    else if (opts.prune) removeIfUnused(claims, hostID, mapped);
  }
  return out;
}

/** Under the node's lock: stale claims among `starts` removed (the pool looks full: ranges given back by crashed owners are found). */
export async function pruneStale(claims: IdClaims, starts: readonly number[], holds: HoldsRange): Promise<void> {
  const mapped = onceMapped();
  for (const hostID of starts) {
    const owner = readClaim(claims, hostID);
    if (!owner || !(await holds(owner, hostID))) removeIfUnused(claims, hostID, mapped);
  }
}

/** The ranges live processes run with (mapped-ids.ts), read anew once, at the first ask. */
function onceMapped(): () => IdRange[] {
  let mapped: IdRange[] | undefined;
  return () => (mapped ??= readMappedRanges());
}

/**
 * A claim its owner no longer holds, removed unless a live process runs with ids of its range: a
 * state dir moved away while its containers run looks stale by its owner's dir, and is not.
 */
function removeIfUnused(claims: IdClaims, hostID: number, mapped: () => IdRange[]): void {
  if (!mapped().some((m) => rangesOverlap(m, { hostID, size: RANGE_SIZE }))) removeClaim(claims, hostID);
}

function removeClaim(claims: IdClaims, hostID: number): void {
  rmSync(claimFile(claims, hostID), { force: true });
  noteChange(claims, hostID, false);
}

/** Under the node's lock: the ranges claimed for `owner` (a claim at the same first id of anyone else's is replaced: callers checked it is stale). */
export function writeClaims(claims: IdClaims, owner: IdRecordOwner, ranges: readonly IdRange[]): void {
  if (!ranges.length) return;
  const text = `${JSON.stringify({ owner: { stateDir: canonicalDir(owner.stateDir), container: owner.container } })}\n`;
  for (const r of ranges) {
    if (r.size !== RANGE_SIZE) continue; // only the allocator's ranges (acetate's earlier shared range is in no pool)
    const mine = readClaim(claims, r.hostID);
    if (mine && sameOwner(mine, owner)) continue;
    const file = claimFile(claims, r.hostID);
    refuseUntrustedDirSync(file, TRUST);
    try {
      mkdirSync(claims.dir, { recursive: true, mode: 0o700 });
      writeFileAtomicSync(file, text, 0o600);
    } catch (err) {
      throw new IdPoolError(`${file}: cannot write the node's claim on ids ${r.hostID}… (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, {
        cause: err,
      });
    }
    noteChange(claims, r.hostID, true);
  }
}

/**
 * Under the node's lock: `owner`'s claims on `ranges`, except where a claim of another live owner
 * overlaps (never taken over, nor written beside: that sharing stays visible). Returns those.
 */
export async function claimFree(claims: IdClaims, owner: IdRecordOwner, ranges: readonly IdRange[], holds: HoldsRange): Promise<IdRange[]> {
  const free: IdRange[] = [];
  const taken: IdRange[] = [];
  for (const r of ranges) ((await liveClaimsOverlapping(claims, r, owner, holds)).length ? taken : free).push(r);
  writeClaims(claims, owner, free);
  return taken;
}

/** The node's lock file, once its dir is known to be root's alone (the lock is made there first). */
export function nodeLockOf(claims: IdClaims): string {
  refuseUntrustedDirSync(claims.lockFile, { what: "the node's id allocation lock", error: (m: string) => new IdPoolError(m) });
  return claims.lockFile;
}

/** Under the node's lock: `owner`'s claims on these ranges removed (another's are left). */
export function dropClaims(claims: IdClaims, owner: IdRecordOwner, ranges: readonly IdRange[]): void {
  for (const r of ranges) {
    const held = readClaim(claims, r.hostID);
    if (held && sameOwner(held, owner)) removeClaim(claims, r.hostID);
  }
}

/** Every claim, or why it cannot be read (test cleanup and leak checks; one read per claim, on no hot path). */
export function listClaims(claims: IdClaims): { hostID: number; owner?: IdRecordOwner; error?: string }[] {
  return listStarts(claims).map((hostID) => {
    try {
      return { hostID, owner: readClaim(claims, hostID) };
    } catch (err) {
      return { hostID, error: (err as Error).message };
    }
  });
}
