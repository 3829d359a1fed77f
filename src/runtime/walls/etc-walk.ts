/**
 * The entries of the node's /etc, at any depth, that only their owner may read (mode without any
 * group or other bit: a service's keys, /etc/security/opasswd, polkit's rules): the host template
 * hides them (host-masks.ts) as it hides the ssh host keys by name.
 *
 * Cost: one lstat per entry of /etc (≈1,200 on a Debian node; measured in the README), at most
 * once a minute per acetate process and again at once when /etc's own mtime changed: a start
 * otherwise takes the cached answer (a start must not cost in proportion to the node's files).
 * `acetate run` watches every walked dir (host-view-watch.ts): a change in one (a file made 0600,
 * a chmod) makes the next pass walk again at once. The shown dirs of the package places (apt's,
 * systemd's, dpkg's state: ≈5,500 entries on this node) are walked the same way. The answer is
 * kept node-wide for every instance's processes (node-facts.ts).
 */
import { lstatSync, readdirSync, type Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { FactsStore } from './node-facts.js';
import { RACY_DIR_MS } from '../../util/stat-cache.js';
import { mtimeOf } from '../../util/mtime.js';

/** A walk stops after this many entries (an /etc this large is not one acetate expects). */
const MAX_ENTRIES = 100_000;
/** How long a walk's answer is used without walking again (unless /etc's mtime changed). */
export const ETC_WALK_TTL_MS = 60_000;

export interface OwnerOnly {
  path: string;
  mode: number;
}

/**
 * Entries under dir (a node path) whose mode has no group/other bits; not below one another.
 *
 * Synchronous within a directory, a turn of the event loop between directories: through the
 * thread pool each lstat was a round trip, and a walk of the ≈6,700 entries cost 100-280 ms of an
 * `apply` (7 Dec, V8 profile at 2,500 containers); synchronously a few µs each (the entries are in
 * the dentry cache). `run` is held for one directory at most (dpkg's info dir: a few thousand).
 */
export async function ownerOnlyEntries(hostRoot: string, dir = '/etc', dirs: string[] = []): Promise<OwnerOnly[]> {
  const out: OwnerOnly[] = [];
  const stack = [dir];
  let seen = 0;
  while (stack.length && seen < MAX_ENTRIES) {
    const d = stack.pop()!;
    const names = readdirOrUndefined(path.join(hostRoot, d));
    if (!names) continue;
    dirs.push(d);
    const batch = names.slice(0, Math.max(0, MAX_ENTRIES - seen));
    seen += batch.length;
    for (const n of batch) {
      const st = lstatOrUndefined(path.join(hostRoot, d, n));
      const p = path.posix.join(d, n);
      if (!st || st.isSymbolicLink()) continue;
      if ((st.mode & 0o077) === 0) out.push({ path: p, mode: st.mode & 0o7777 });
      else if (st.isDirectory()) stack.push(p);
    }
    if (stack.length) await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return out.sort((a, b) => a.path.localeCompare(b.path));
}

function readdirOrUndefined(dir: string): string[] | undefined {
  try {
    return readdirSync(dir);
  } catch {
    return undefined;
  }
}

function lstatOrUndefined(p: string): Stats | undefined {
  try {
    return lstatSync(p);
  } catch {
    return undefined; // gone since the readdir, or unreadable: as the walk always did
  }
}

const memory = new Map<string, { roots: string; at: number; mtimes: string; entries: OwnerOnly[]; dirs: string[] }>();

/**
 * `run`'s watcher (host-view-watch.ts) saw a change in one of the walked dirs (a file made 0600, a
 * chmod): the next call walks again at once instead of after the minute.
 */
export function forgetOwnerOnlyWalk(hostRoot: string): void {
  memory.delete(hostRoot);
  // Not the cache file either (a chmod changes no dir's mtime): the walk made next is written over
  // it, so the other processes (of every instance: node-facts.ts) take the new answer from then on.
  // Not removed here: every `run` calls this at its first pass and at any write in /etc, and the
  // node's other processes would all walk again until the next walk is written.
  forgotten.add(hostRoot);
}

const forgotten = new Set<string>();

/** Every dir the last walk read (host-view-watch.ts watches them): [] before the first. */
export function walkedDirs(hostRoot: string): readonly string[] {
  return memory.get(hostRoot)?.dirs ?? [];
}

interface CacheFile {
  roots: string;
  at: number;
  dirs: [string, number][];
  entries: OwnerOnly[];
}

/** The file's shape (a file of another shape, e.g. cut short by a full disk, is walked again). */
function isCacheFile(v: unknown): v is CacheFile {
  const c = v as CacheFile;
  return (
    typeof c?.roots === 'string' &&
    typeof c.at === 'number' &&
    Array.isArray(c.dirs) &&
    c.dirs.every((d) => Array.isArray(d) && typeof d[0] === 'string' && typeof d[1] === 'number') &&
    Array.isArray(c.entries) &&
    c.entries.every((e) => typeof e?.path === 'string' && typeof e.mode === 'number')
  );
}

/**
 * The walk another acetate process made less than a minute ago (node-facts.ts: node-wide), if no
 * walked dir has changed since (one stat per dir, ≈200, instead of one lstat per entry, ≈6,700):
 * each `apply` is its own process, and walking at each would add 0.1-0.5 s to every start.
 */
async function fromFile(hostRoot: string, store: FactsStore, roots: string, now: number): Promise<CacheFile | undefined> {
  const c = store.read('owner-only');
  if (!isCacheFile(c) || c.roots !== roots || now - c.at >= ETC_WALK_TTL_MS || now < c.at) return undefined;
  const same = await Promise.all(
    c.dirs.map(([d, m]) =>
      stat(path.join(hostRoot, d)).then(
        (s) => s.mtimeMs === m,
        () => false,
      ),
    ),
  );
  return same.every(Boolean) ? c : undefined;
}

async function toFile(hostRoot: string, store: FactsStore, c: Omit<CacheFile, 'dirs'>, dirs: string[]): Promise<void> {
  const stamped = await Promise.all(dirs.map((d) => stat(path.join(hostRoot, d)).then((s) => [d, s.mtimeMs] as [string, number])));
  if (stamped.some(([, m]) => m > c.at - RACY_DIR_MS)) return; // changed while walked (or within the mtime's tick): the next process walks again
  await store.write('owner-only', { ...c, dirs: stamped } satisfies CacheFile);
}

/**
 * ownerOnlyEntries of /etc and of `more` roots (the shown dirs of the package places: apt's and
 * systemd's state, whose owner-only entries at any depth are absent too), cached (see the file's
 * comment); `now` injected for tests.
 */
export async function etcOwnerOnly(hostRoot: string, now = Date.now(), more: readonly string[] = [], store?: FactsStore): Promise<OwnerOnly[]> {
  // Sorted: `more` comes in the order the listing's reads finished, which differs between
  // processes, and a cache keyed by the unsorted list was missed by most of them (measured).
  const roots = ['/etc', ...[...new Set(more)].filter((r) => r !== '/etc').sort()];
  // Synchronous: taken at every start (a thread-pool round trip each cost more than the stat).
  const mtimes = roots.map((r) => mtimeOf(path.join(hostRoot, r)) ?? 0).join(',');
  const had = memory.get(hostRoot);
  if (had && had.roots === roots.join(',') && had.mtimes === mtimes && now - had.at < ETC_WALK_TTL_MS) return had.entries;
  const stored = had || !store || forgotten.delete(hostRoot) ? undefined : await fromFile(hostRoot, store, roots.join(','), now);
  if (stored) {
    memory.set(hostRoot, { roots: stored.roots, at: stored.at, mtimes, entries: stored.entries, dirs: stored.dirs.map(([d]) => d) });
    return stored.entries;
  }
  const dirs: string[] = [];
  const entries = (await Promise.all(roots.map((r) => ownerOnlyEntries(hostRoot, r, dirs)))).flat();
  // A cache that cannot be written is walked again by the next process; the answer is the same.
  if (store) await toFile(hostRoot, store, { roots: roots.join(','), at: now, entries }, dirs).catch(() => undefined);
  // The same array while the answer is the same: the view built from it stays the same object.
  const same = had && JSON.stringify(had.entries) === JSON.stringify(entries);
  memory.set(hostRoot, { roots: roots.join(','), at: now, mtimes, entries: same ? had.entries : entries, dirs });
  return same ? had.entries : entries;
}
