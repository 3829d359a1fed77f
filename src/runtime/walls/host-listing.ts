/**
 * The node's dirs the host template's view is decided from (host-masks.ts), read once per change:
 * the places' listings are cached by their dirs' mtimes, dpkg's lists by dpkg's (dpkg-owned.ts),
 * both node-wide (node-facts.ts).
 * A start only stats the dirs listed last time. host-view-watch.ts watches the same dirs.
 */
import { lstat, readdir } from 'node:fs/promises';
import { mtimeOf } from '../../util/mtime.js';
import path from 'node:path';
import { dirsToList, hostView, PACKAGE_PLACES, type HostView, type HostViewOptions, type NodeEntry } from './host-masks.js';
import { packageOwned } from './dpkg-owned.js';
import { knownInstances } from './instances.js';
import { etcOwnerOnly } from './etc-walk.js';
import { factsStore } from './node-facts.js';
import { RACY_DIR_MS } from '../../util/stat-cache.js';

async function listDir(hostRoot: string, dir: string): Promise<NodeEntry[] | undefined> {
  const names = await readdir(path.join(hostRoot, dir)).catch(() => undefined);
  if (!names) return undefined;
  const out = await Promise.all(
    names.map(async (name): Promise<NodeEntry | undefined> => {
      const st = await lstat(path.join(hostRoot, dir, name)).catch(() => undefined);
      if (!st) return undefined;
      const type = st.isDirectory() ? 'dir' : st.isFile() ? 'file' : st.isSymbolicLink() ? 'symlink' : 'other';
      return { name, type, uid: st.uid, mode: st.mode };
    }),
  );
  return out.filter((e): e is NodeEntry => !!e);
}

const listings = new Map<string, { key: string; dirs: string[]; listing: Map<string, NodeEntry[]> }>();

/** A dir changed within RACY_DIR_MS of its stat keys no cache (a unique key: read again next time). */
let unsure = 0;

/** The node's listing hostView needs, read again only when one of its dirs changed. */
async function nodeListing(hostRoot: string, o: HostViewOptions): Promise<Map<string, NodeEntry[]>> {
  const read = async (dirs: string[], into = new Map<string, NodeEntry[]>()) => {
    await Promise.all(
      dirs.map(async (d) => {
        const l = await listDir(hostRoot, d);
        if (l) into.set(d, l);
      }),
    );
    return into;
  };
  // Each dir's mtime is taken before it is read: a change made while they are read (a service's
  // mkdir as `run`'s watcher answers an earlier one) makes the next key differ, so the next pass
  // reads again. Taken after, it would record the new mtime with the old listing, and the new
  // entry would stay unhidden until the dir changed again.
  // Synchronous stats (as util/small-file.ts): every start takes these stamps, ~50 local dirs, and
  // a thread-pool round trip each cost more than the stat.
  const stamps = (dirs: readonly string[]) => {
    const now = Date.now();
    return new Map(
      dirs.map((d) => {
        const mtime = mtimeOf(path.join(hostRoot, d));
        return [d, mtime === undefined ? '-' : mtime > now - RACY_DIR_MS ? `recent${++unsure}` : String(mtime)];
      }),
    );
  };
  const keyOf = (dirs: readonly string[], at: Map<string, string>) => JSON.stringify([hostRoot, o, dirs.map((d) => [d, at.get(d) ?? '-'])]);
  // A start only stats the dirs listed last time: the listing is read again when one changed.
  const cached = listings.get(hostRoot);
  if (cached && cached.key === keyOf(cached.dirs, stamps(cached.dirs))) return cached.listing;
  const firstDirs = dirsToList(o);
  const at = stamps(firstDirs);
  const first = await read(firstDirs);
  const dirs = dirsToList(o, first, o);
  const more = dirs.filter((d) => !first.has(d));
  for (const [d, m] of stamps(more)) at.set(d, m);
  const listing = await read(more, first);
  const key = keyOf(dirs, at);
  listings.set(hostRoot, { key, dirs, listing });
  return listing;
}

/** The dirs of the node's last listing (what host-view-watch.ts watches); [] before the first. */
export function listedDirs(hostRoot: string): readonly string[] {
  return listings.get(hostRoot)?.dirs ?? [];
}

const views = new WeakMap<object, { owned?: Set<string>; ownerOnly: unknown; view: HostView }>();

/**
 * The view of this node (host-masks.ts), from its current listing and dpkg's lists; the same object
 * while neither changed. factsDir: the node-wide dir of the node facts (node-facts.ts; undefined:
 * its default), <stateDir>/host-view when it cannot be used.
 */
export async function currentHostView(hostRoot: string, o: Omit<HostViewOptions, 'packageOwned'>, stateDir: string, factsDir?: string): Promise<HostView> {
  const facts = factsStore(hostRoot, factsDir, path.join(stateDir, 'host-view'));
  const owned = await packageOwned(hostRoot, facts);
  const instances = await knownInstances(hostRoot);
  const base: HostViewOptions = { ...o, instances, ...(owned ? { packageOwned: owned } : {}) };
  const listing = await nodeListing(hostRoot, base);
  // The shown dirs of the package places (their listing's second level): owner-only entries at any
  // depth inside them are absent, as in /etc (a dir shown whole on this node is not walked).
  const show = new Set(o.show ?? []);
  const inPackageDirs = [...listing.keys()].filter((d) => (PACKAGE_PLACES as readonly string[]).includes(path.posix.dirname(d)) && !show.has(d));
  const ownerOnly = await etcOwnerOnly(hostRoot, Date.now(), inPackageDirs, facts);
  const opts: HostViewOptions = { ...base, ownerOnly };
  const had = views.get(listing);
  if (had && had.owned === owned && had.ownerOnly === ownerOnly) return had.view;
  const view = hostView(listing, opts);
  views.set(listing, { owned, ownerOnly, view });
  return view;
}
