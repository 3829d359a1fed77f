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
 * record nor a container of this state dir (its ids.json, read again each time: that also imports
 * what an acetate before node-wide records gave out) holds, and writes this state dir's records
 * back, dropping those whose owner is gone. All under a flock of <records file>.lock (every
 * acetate process of the node) and a mutex of this process (concurrent creates of the loop): two
 * containers never get one range. Both ranges and bases count as used: files owned by a range not
 * yet re-owned are still its.
 */
import { closeSync, existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { TransientError } from '../../contracts/errors.js';
import { flockFd, openLockFile } from '../../util/flock.js';
import { readJson, writeJsonAtomic } from '../../util/json-file.js';
import { KeyedMutex } from '../../util/keyed-mutex.js';
import { ownerExists, readIdRecords, readIdRecordsSync, writeIdRecords, type IdRecord } from './id-records.js';
import { formatIdRange, IdPoolError, lowestFreeRange, RANGE_SIZE, rangeInPool, rangesOverlap, type IdRange } from './id-pool.js';

export interface IdsFile {
  /** Owner base of the private area: 0 = the node's ids. */
  base: number;
  size: number;
  /** The range the container runs with; absent: the node's ids. */
  range?: IdRange;
}

export const IDS_FILE = 'ids.json';

export function idsFileOf(containerDir: string): string {
  return path.join(containerDir, IDS_FILE);
}

export function readIds(containerDir: string): Promise<IdsFile | undefined> {
  return readJson<IdsFile>(idsFileOf(containerDir)).catch(() => undefined);
}

/**
 * The range a container's record says it runs with. acetate before per-container ranges wrote only
 * `base` (every unprivileged container on the node's one shared range): that range is the record.
 */
export function recordedRange(ids: IdsFile | undefined): IdRange | undefined {
  if (!ids) return undefined;
  if (ids.range) return ids.range;
  return ids.base !== 0 ? { hostID: ids.base, size: ids.size } : undefined;
}

export interface IdRangeStore {
  /** <stateDir>/containers */
  containersDir: string;
  /** The node's records (id-records.ts); its flock is <recordsFile>.lock. */
  recordsFile: string;
  pool: IdRange;
}

function lockFileOf(store: IdRangeStore): string {
  return `${store.recordsFile}.lock`;
}

const inProcess = new KeyedMutex();

async function withRangesLock<T>(lockFile: string, fn: () => Promise<T>): Promise<T> {
  return inProcess.run(lockFile, async () => {
    const fd = openLockFile(lockFile);
    try {
      await flockFd(fd, { mode: 'exclusive', wait: true });
      return await fn();
    } finally {
      closeSync(fd); // releases the flock
    }
  });
}

/** The ranges an ids.json holds: the one it runs with, and the owner of its files when another. */
function rangesOf(ids: IdsFile | undefined): IdRange[] {
  const r = recordedRange(ids);
  const out = r ? [r] : [];
  if (ids && ids.base !== 0 && ids.base !== r?.hostID) out.push({ hostID: ids.base, size: ids.size });
  return out;
}

/** This state dir's records, from its containers' ids.json. */
async function ownRecords(containersDir: string): Promise<IdRecord[]> {
  const stateDir = path.dirname(path.resolve(containersDir));
  const names = await readdir(containersDir).catch(() => [] as string[]);
  const out: IdRecord[] = [];
  for (const n of names) {
    // Dirs being built or deleted (.creating-…, .removing-…) hold no range of their own.
    if (n.startsWith('.')) continue;
    const ranges = rangesOf(await readIds(path.join(containersDir, n)));
    if (ranges.length) out.push({ owner: { stateDir, container: n }, ranges });
  }
  return out;
}

/** Other instances' records whose owner still exists (the rest are reclaimed). */
async function othersLive(store: IdRangeStore): Promise<IdRecord[]> {
  const stateDir = path.dirname(path.resolve(store.containersDir));
  const live: IdRecord[] = [];
  for (const r of await readIdRecords(store.recordsFile)) {
    if (path.resolve(r.owner.stateDir) === stateDir) continue; // rebuilt from its ids.json files
    if (await ownerExists(r.owner)) live.push(r);
  }
  return live;
}

/** Under the lock: the node's records with this state dir's as they are now. */
async function syncRecords(store: IdRangeStore, others: readonly IdRecord[]): Promise<void> {
  await writeIdRecords(store.recordsFile, [...others, ...(await ownRecords(store.containersDir))]);
}

const imported = new Map<string, Promise<void>>();

/**
 * Once per process and state dir: this state dir's ranges into the node's records, with no range
 * to give (a start of a container that has its range). An instance upgraded from per-state-dir
 * records, whose containers all have ranges, would otherwise show them to the others only at its
 * next create.
 */
export function importIdRecords(store: IdRangeStore): Promise<void> {
  const key = `${store.recordsFile}\0${path.resolve(store.containersDir)}`;
  let p = imported.get(key);
  if (!p) {
    p = withRangesLock(lockFileOf(store), async () => syncRecords(store, await othersLive(store)));
    p.catch(() => imported.delete(key)); // tried again at the next start
    imported.set(key, p);
  }
  return p;
}

/** Ranges held by other instances' live containers, as the node's records say (plan's prediction; no lock). */
export function rangesHeldElsewhere(store: IdRangeStore): IdRange[] {
  const stateDir = path.dirname(path.resolve(store.containersDir));
  return readIdRecordsSync(store.recordsFile)
    .filter((r) => path.resolve(r.owner.stateDir) !== stateDir && existsSync(path.join(r.owner.stateDir, 'containers', r.owner.container)))
    .flatMap((r) => r.ranges);
}

/**
 * Gives the container in `dir` the ids it is to run with, recorded in its ids.json: for
 * `unprivileged`, the range it has when that is in the pool and no other container's, else
 * `preferred` (the range plan announced) when free, else the lowest free range; otherwise none
 * (its files stay owned by the range until the next start re-owns them). Throws when the pool is full.
 */
export async function assignIdRange(store: IdRangeStore, dir: string, unprivileged: boolean, preferred?: IdRange): Promise<IdRange | undefined> {
  // The node's ids and no range recorded (most creates with hostUsers: true): nothing to give or
  // free, so no lock (a flock costs a process). The container's own operations never interleave.
  if (!unprivileged && !(await readIds(dir))?.range) return undefined;
  return withRangesLock(lockFileOf(store), async () => {
    const ids = await readIds(dir);
    const had = recordedRange(ids);
    const others = await othersLive(store);
    if (!unprivileged) {
      if (ids?.range) await writeIds(dir, { base: ids.base, size: ids.size });
      await syncRecords(store, others);
      return undefined;
    }
    const self = path.basename(dir);
    const used = [...others, ...(await ownRecords(store.containersDir)).filter((r) => r.owner.container !== self)].flatMap((r) => r.ranges);
    const free = (r: IdRange) => rangeInPool(r, store.pool) && !used.some((u) => rangesOverlap(u, r));
    let range = had && free(had) ? had : preferred && free(preferred) ? preferred : lowestFreeRange(store.pool, used);
    if (!range) {
      throw new IdPoolError(
        `no free range of ${RANGE_SIZE} ids left in the pool ${formatIdRange(store.pool)} (${Math.floor(store.pool.size / RANGE_SIZE)} ranges, all held): widen --userns-pool, or destroy a container`,
      );
    }
    range = { hostID: range.hostID, size: range.size };
    if (ids?.range?.hostID !== range.hostID || ids.range.size !== range.size) {
      await writeIds(dir, { base: ids?.base ?? 0, size: ids?.size ?? RANGE_SIZE, range });
    }
    await syncRecords(store, others);
    return range;
  });
}

async function writeIds(dir: string, ids: IdsFile): Promise<void> {
  await writeJsonAtomic(idsFileOf(dir), ids);
}

/** Records who owns the private area's files now, keeping the range (preparePrivateArea, after a re-own). */
export async function recordOwner(dir: string, base: number, size: number): Promise<void> {
  const ids = await readIds(dir);
  await writeIds(dir, { base, size, ...(ids?.range ? { range: ids.range } : {}) });
}

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
    throw new IdRangeHeldError(
      `${idsFileOf(dir)}: range ${formatIdRange(range)} is held by ${path.join(r.owner.stateDir, 'containers', r.owner.container)} ` +
        `(node records ${store.recordsFile}); not started: replace or re-create this container to give it a free range`,
    );
  }
}
