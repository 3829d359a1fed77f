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
 * so an allocation is not a read of every container's ids.json. All under the node's allocation
 * flock (/var/lib/acetate/id-ranges.lock, whatever the records file; kept for a burst of
 * allocations, id-lock.ts) and a mutex of this process (concurrent creates of the loop): two
 * containers never get one range. Both ranges and bases count as used: files owned by a range not
 * yet re-owned are still its. Each range given is also claimed node-wide (id-claims.ts), so that
 * instances given different records files (ACETATE_ID_RECORDS) still never share one.
 */
import { closeSync, existsSync, openSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { withIdRecordsLock } from './id-lock.js';
import {
  appendIdRecords,
  compactIdRecordsSync,
  journalOf,
  ownerExists,
  readIdRecords,
  readIdRecordsSync,
  refuseUntrustedRecordsDir,
  writeIdRecords,
  type IdRecord,
  type IdRecordOwner,
} from './id-records.js';
import { formatIdRange, IdPoolError, lowestFreeRange, RANGE_SIZE, rangeInPool, rangesOverlap, type IdRange } from './id-pool.js';
import { claimedStarts, dropClaims, liveClaimsOverlapping, writeClaims, type IdClaims } from './id-claims.js';
import { holdsRange, readIds, recordedRange, rangesOf, writeIds, type IdsFile } from './ids-file.js';
import { refuseUntrustedDirSync } from '../../util/trusted-file.js';

export { IDS_FILE, idsFileOf, readIds, recordedRange, type IdsFile } from './ids-file.js';

export interface IdRangeStore {
  /** <stateDir>/containers */
  containersDir: string;
  /** The node's records (id-records.ts); its flock is <recordsFile>.lock. */
  recordsFile: string;
  pool: IdRange;
  /**
   * The node's claims (id-claims.ts; every instance passes NODE_ID_CLAIMS): a range claimed by a
   * live owner is no one else's whatever records file each uses, and the lock is the node's.
   * Absent: the records alone decide, under their own lock (the allocator's own tests).
   */
  claims?: IdClaims;
}

/** The records' lock file, once its dir is known to be root's alone (the lock is made there first). */
function lockFileOf(store: IdRangeStore): string {
  refuseUntrustedRecordsDir(store.recordsFile);
  if (!store.claims) return `${store.recordsFile}.lock`;
  refuseUntrustedDirSync(store.claims.lockFile, { what: "the node's id allocation lock", error: (m) => new IdPoolError(m) });
  return store.claims.lockFile;
}

/** Under the lock: the claims of `owner` brought to `now` (ranges it no longer holds let go). */
function reclaim(store: IdRangeStore, owner: IdRecordOwner, before: readonly IdRange[], now: readonly IdRange[]): void {
  if (!store.claims) return;
  dropClaims(
    store.claims,
    owner,
    before.filter((b) => !now.some((n) => n.hostID === b.hostID)),
  );
  writeClaims(store.claims, owner, now);
}

function stateDirOf(store: IdRangeStore): string {
  return path.dirname(path.resolve(store.containersDir));
}

/**
 * What this process knows of the records, kept between allocations so that one costs no scan of
 * every container (the scan of every ids.json at each create was O(N²) per apply of N). Valid only
 * under the lock: `recordsStamp` is the records file as this process last read or wrote it (another
 * process wrote it since when it differs: `others` is read again), `own` is this state dir's
 * containers' ranges from their ids.json, read once and then kept up to date by this process's
 * allocations; `dirStamp` is the containers dir as last listed (a create or destroy, by this
 * process or another, changes it: the listing drops destroyed containers and reads the ids.json of
 * new ones only).
 */
interface View {
  recordsStamp?: string;
  others: IdRecord[];
  own: Map<string, IdRange[]>;
  dirStamp?: string;
  /** Other instances' owners seen alive. */
  liveOwners: Set<string>;
  /**
   * The records file as last read or written, kept open: its inode cannot be given to another
   * file while open, and the file is only ever replaced (atomic rename), so the same inode at the
   * path is the same contents even when file times are too coarse to tell two writes apart.
   */
  recordsFd?: number;
  journalFd?: number;
  /** Owners whose records are to go at the next append (destroyed containers, gone instances). */
  removed: IdRecordOwner[];
  /** Built anew: its first change writes the records whole (drops what no owner holds any more). */
  whole: boolean;
}

/** Under the lock, after the records were read or written: keeps the file open (View.recordsFd). */
function holdRecords(v: View, file: string): void {
  closeHeld(v);
  v.recordsFd = openIfThere(file);
  v.journalFd = openIfThere(journalOf(file));
}

function closeHeld(v: View): void {
  if (v.recordsFd !== undefined) closeSync(v.recordsFd);
  if (v.journalFd !== undefined) closeSync(v.journalFd);
  v.recordsFd = v.journalFd = undefined;
}

function openIfThere(file: string): number | undefined {
  try {
    return openSync(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    return undefined;
  }
}

/** The records file and its journal as they are: another process changed them when it differs. */
async function recordsStampOf(file: string): Promise<string> {
  return `${await stampOf(file)}|${await stampOf(journalOf(file))}`;
}

const views = new Map<string, View>();

function viewKey(store: IdRangeStore): string {
  return `${store.recordsFile}\0${path.resolve(store.containersDir)}`;
}

async function stampOf(file: string): Promise<string | undefined> {
  try {
    const st = await stat(file, { bigint: true });
    return `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

const ownerKey = (o: IdRecordOwner) => `${path.resolve(o.stateDir)}\0${o.container}`;

/**
 * Under the lock: the view brought up to date, cheaply when nothing changed. `full`: everything
 * read again (every other owner's liveness, every ids.json), as the first time: when the pool
 * looks full or the range asked for is held, so that ranges given back without a trace in the
 * records (an instance's state dir removed) are found before settling.
 */
async function currentView(store: IdRangeStore, full = false): Promise<View> {
  const key = viewKey(store);
  let v = views.get(key);
  if (!v || full) {
    if (v) closeHeld(v);
    v = { others: [], own: new Map(), liveOwners: new Set(), removed: [], whole: true };
    views.set(key, v);
  }
  const stateDir = stateDirOf(store);
  const dirStamp = await stampOf(store.containersDir);
  if (v.dirStamp === undefined || dirStamp !== v.dirStamp) {
    const names = new Set((await readdir(store.containersDir).catch(() => [] as string[])).filter((n) => !n.startsWith('.')));
    // Dirs being built or deleted (.creating-…, .removing-…) hold no range of their own.
    for (const n of v.own.keys()) {
      if (names.has(n)) continue;
      v.own.delete(n);
      v.removed.push({ stateDir, container: n });
    }
    for (const n of names) if (!v.own.has(n)) v.own.set(n, rangesOf(await readIds(path.join(store.containersDir, n))));
    v.dirStamp = dirStamp;
  }
  const recordsStamp = await recordsStampOf(store.recordsFile);
  if (v.recordsStamp === undefined || recordsStamp !== v.recordsStamp) {
    // Another process wrote the records. Other instances' records whose owner is gone are
    // reclaimed; an owner seen alive once is not checked again until a full look (its own
    // instance drops it at its destroy). Records of this state dir (another process of it gave a
    // range to a container this view has): held too, as well as what the view has.
    const others: IdRecord[] = [];
    for (const r of await readIdRecords(store.recordsFile)) {
      if (path.resolve(r.owner.stateDir) === stateDir) {
        const mine = v.own.get(r.owner.container);
        if (mine) v.own.set(r.owner.container, [...mine, ...r.ranges.filter((x) => !mine.some((m) => m.hostID === x.hostID && m.size === x.size))]);
        continue;
      }
      const k = ownerKey(r.owner);
      if (v.liveOwners.has(k) || (await ownerExists(r.owner))) {
        v.liveOwners.add(k);
        others.push(r);
      } else v.removed.push(r.owner);
    }
    v.others = others;
    v.recordsStamp = recordsStamp;
    holdRecords(v, store.recordsFile);
  }
  return v;
}

/** Under the lock: the node's records with this state dir's as the view has them, written whole. */
async function syncRecords(store: IdRangeStore, v: View): Promise<void> {
  const stateDir = stateDirOf(store);
  const own: IdRecord[] = [];
  for (const [container, ranges] of v.own) if (ranges.length) own.push({ owner: { stateDir, container }, ranges });
  await writeIdRecords(store.recordsFile, [...v.others, ...own]);
  v.removed = [];
  v.whole = false;
  v.recordsStamp = await recordsStampOf(store.recordsFile);
  holdRecords(v, store.recordsFile);
}

/** Under the lock: the container's ranges now (and what the view dropped) into the node's records. */
async function recordChange(store: IdRangeStore, v: View, container: string): Promise<void> {
  if (v.whole) return syncRecords(store, v);
  const stateDir = stateDirOf(store);
  appendIdRecords(store.recordsFile, [
    ...v.removed.map((owner) => ({ owner, ranges: [] })),
    { owner: { stateDir, container }, ranges: v.own.get(container) ?? [] },
  ]);
  v.removed = [];
  v.recordsStamp = await recordsStampOf(store.recordsFile);
  holdRecords(v, store.recordsFile);
}

/** What this process does as it lets go of the lock: the journal folded into the records. */
const compact = (store: IdRangeStore) => () => compactIdRecordsSync(store.recordsFile);

const imported = new Map<string, Promise<void>>();

/**
 * Once per process and state dir: this state dir's ranges into the node's records, with no range
 * to give (a start of a container that has its range). An instance upgraded from per-state-dir
 * records, whose containers all have ranges, would otherwise show them to the others only at its
 * next create.
 */
export function importIdRecords(store: IdRangeStore): Promise<void> {
  const key = viewKey(store);
  let p = imported.get(key);
  if (!p) {
    p = withIdRecordsLock(
      lockFileOf(store),
      async () => {
        const v = await currentView(store);
        await syncRecords(store, v);
        await claimOwn(store, v);
      },
      { beforeRelease: compact(store) },
    );
    p.catch(() => imported.delete(key)); // tried again at the next start
    imported.set(key, p);
  }
  return p;
}

/**
 * Under the lock: this state dir's ranges claimed where no live owner claims them (containers made
 * before claims, an instance's first start). A range another live owner claims is left to it:
 * checkRangeHeld refuses the start of the container that names it.
 */
async function claimOwn(store: IdRangeStore, v: View): Promise<void> {
  if (!store.claims) return;
  const stateDir = stateDirOf(store);
  const starts = claimedStarts(store.claims); // once for all: a listing per container would be O(N²)
  for (const [container, ranges] of v.own) {
    const owner = { stateDir, container };
    const free: IdRange[] = [];
    for (const r of ranges) if (!(await liveClaimsOverlapping(store.claims, r, owner, holdsRange, { starts })).length) free.push(r);
    writeClaims(store.claims, owner, free);
  }
}

/** Other instances' records among the node's (by the parsed records' identity: read again only when the file changed). */
const othersOf = new WeakMap<readonly IdRecord[], Map<string, IdRecord[]>>();

/**
 * Ranges held by other instances' live containers, as the node's records say (plan's prediction;
 * no lock). Asked at every reconcile of the loop: its cost is that of the other instances'
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
  return others.filter((r) => existsSync(path.join(r.owner.stateDir, 'containers', r.owner.container))).flatMap((r) => r.ranges);
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
  return withIdRecordsLock(
    lockFileOf(store),
    async () => {
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
        reclaim(store, owner, rangesOf(ids), rangesOf(now));
        return undefined;
      }
      // Ranges another live owner claims though the records do not show them (an instance given
      // another records file): passed over.
      const claimedElsewhere: IdRange[] = [];
      const pick = (view: View): IdRange | undefined => {
        const used: IdRange[] = [...claimedElsewhere, ...view.others.flatMap((r) => r.ranges)];
        for (const [n, rs] of view.own) if (n !== self) used.push(...rs);
        const free = (r: IdRange) => rangeInPool(r, store.pool) && !used.some((u) => rangesOverlap(u, r));
        return had && free(had) ? had : preferred && free(preferred) ? preferred : lowestFreeRange(store.pool, used);
      };
      let range = pick(v);
      if (!range || (had && range !== had) || (preferred && !had && range !== preferred)) {
        // Not what was asked for, or none: look again with everything read anew before settling.
        v = await currentView(store, true);
        range = pick(v);
      }
      for (let held; range && store.claims && (held = await liveClaimsOverlapping(store.claims, range, owner, holdsRange, { prune: true })).length;) {
        claimedElsewhere.push(...held.map((h) => h.range));
        range = pick(v);
      }
      if (!range) {
        throw new IdPoolError(
          `no free range of ${RANGE_SIZE} ids left in the pool ${formatIdRange(store.pool)} (${Math.floor(store.pool.size / RANGE_SIZE)} ranges, all held): widen --userns-pool, or destroy a container`,
        );
      }
      range = { hostID: range.hostID, size: range.size };
      const now: IdsFile = { base: ids?.base ?? 0, size: ids?.size ?? RANGE_SIZE, range };
      if (ids?.range?.hostID !== range.hostID || ids.range.size !== range.size) await writeIds(dir, now);
      v.own.set(self, rangesOf(now));
      await recordChange(store, v, self);
      reclaim(store, owner, rangesOf(ids), rangesOf(now));
      return range;
    },
    { beforeRelease: compact(store) },
  );
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
  await withIdRecordsLock(
    lockFileOf(store),
    async () => {
      const v = await currentView(store);
      v.own.delete(self);
      await recordChange(store, v, self);
      if (store.claims) dropClaims(store.claims, { stateDir: stateDirOf(store), container: self }, rangesOf(held));
    },
    { beforeRelease: compact(store) },
  );
}

/** Records who owns the private area's files now, keeping the range (preparePrivateArea, after a re-own). */
export async function recordOwner(dir: string, base: number, size: number, claims?: IdClaims): Promise<void> {
  const ids = await readIds(dir);
  const now: IdsFile = { base, size, ...(ids?.range ? { range: ids.range } : {}) };
  // The files' earlier owner's claim goes first, while ids.json still names it: a claim is taken
  // over only once stale, so until the write below no other process touches it (no lock needed).
  const gone = rangesOf(ids).filter((r) => !rangesOf(now).some((n) => n.hostID === r.hostID));
  if (claims && gone.length) dropClaims(claims, { stateDir: path.dirname(path.dirname(path.resolve(dir))), container: path.basename(dir) }, gone);
  await writeIds(dir, now);
  // The files' earlier owner is free now: the views of this state dir hold only what ids.json does.
  const containersDir = path.resolve(path.dirname(dir));
  for (const [key, v] of views) if (key.endsWith(`\0${containersDir}`) && v.own.has(path.basename(dir))) v.own.set(path.basename(dir), rangesOf(now));
}
