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
 * Why a file per container and no table of the node: the range lives and dies with the container
 * dir. A destroy deletes the dir (so the range is free again, for the next allocation to reuse),
 * a replace keeps it with the private area (so the range stays, and the files it owns stay the
 * container's). Allocation reads every container's ids.json and takes the lowest free range, under
 * a flock of <stateDir>/id-ranges.lock (other acetate processes: `template import` next to `run`)
 * and a mutex of this process (concurrent creates of the loop): two containers never get one range.
 * Both ranges and bases count as used: files owned by a range not yet re-owned are still its.
 */
import { closeSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { flockFd, openLockFile } from '../../util/flock.js';
import { readJson, writeJsonAtomic } from '../../util/json-file.js';
import { KeyedMutex } from '../../util/keyed-mutex.js';
import { formatIdRange, IdPoolError, lowestFreeRange, RANGE_SIZE, rangeInPool, rangesOverlap, type IdRange } from './id-pool.js';

export interface IdsFile {
  /** Owner base of the private area: 0 = the node's ids. */
  base: number;
  size: number;
  /** The range the container runs with; absent: the node's ids. */
  range?: IdRange;
}

export const IDS_FILE = 'ids.json';
export const ID_RANGES_LOCK = 'id-ranges.lock';

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
  /** <stateDir>/id-ranges.lock */
  lockFile: string;
  pool: IdRange;
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

/** Every range held by a container other than `except` (its own range and the owner of its files). */
async function rangesInUse(containersDir: string, except: string): Promise<IdRange[]> {
  const names = await readdir(containersDir).catch(() => [] as string[]);
  const used: IdRange[] = [];
  for (const n of names) {
    // Dirs being built or deleted (.creating-…, .removing-…) hold no range of their own.
    if (n.startsWith('.') || path.join(containersDir, n) === except) continue;
    const ids = await readIds(path.join(containersDir, n));
    const r = recordedRange(ids);
    if (r) used.push(r);
    if (ids && ids.base !== 0 && ids.base !== r?.hostID) used.push({ hostID: ids.base, size: ids.size });
  }
  return used;
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
  return withRangesLock(store.lockFile, async () => {
    const ids = await readIds(dir);
    const had = recordedRange(ids);
    if (!unprivileged) {
      if (ids?.range) await writeIds(dir, { base: ids.base, size: ids.size });
      return undefined;
    }
    const used = await rangesInUse(store.containersDir, dir);
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
