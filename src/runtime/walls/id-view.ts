/**
 * What an allocating process knows of the node's id records and of its state dir's containers,
 * kept between allocations (id-ranges.ts is the allocator; this is its memory). Valid only under
 * the records' lock.
 */
import { closeSync, openSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { appendIdRecords, journalOf, ownerExists, readIdRecords, writeIdRecords, type IdRecord, type IdRecordOwner } from './id-records.js';
import type { IdRange } from './id-pool.js';
import type { IdClaims } from './id-claims.js';
import { rangesOf, readIds } from './ids-file.js';

export interface IdRangeStore {
  /** <stateDir>/containers */
  containersDir: string;
  /** The node's records (id-records.ts); its flock is <recordsFile>.lock, taken by every allocation. */
  recordsFile: string;
  pool: IdRange;
  /**
   * The node's claims (id-claims.ts; every instance passes NODE_ID_CLAIMS): a range claimed by a
   * live owner is no one else's whatever records file each uses; their lock is taken inside the
   * records' one. Absent: the records alone decide (the allocator's own tests).
   */
  claims?: IdClaims;
  /** <runDir>/containers: each container's init pid (<id>/pid), to tell its own processes from others' (id-ranges.ts claimOwn). */
  runContainersDir?: string;
}

export function stateDirOf(store: IdRangeStore): string {
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
export interface View {
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

export const views = new Map<string, View>();

export function viewKey(store: IdRangeStore): string {
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
export async function currentView(store: IdRangeStore, full = false): Promise<View> {
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
export async function syncRecords(store: IdRangeStore, v: View): Promise<void> {
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
export async function recordChange(store: IdRangeStore, v: View, container: string): Promise<void> {
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
