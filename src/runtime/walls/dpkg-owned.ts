/**
 * Which entries of /var/lib, /var/cache, /opt and /usr/local (and of their dirs) the installed packages own: the host template shows
 * those (host-masks.ts). Read from dpkg's own file lists (/var/lib/dpkg/info/*.list, one path a
 * line, what each package installed) rather than a list of names kept here, so a package's state
 * dir is known the moment it is installed. Computed once per node and kept node-wide for every
 * instance (node-facts.ts), keyed by the mtimes of /var/lib/dpkg/status and of the info dir (dpkg
 * rewrites both at every install or removal), so an install refreshes it.
 * Without /var/lib/dpkg/info (not a Debian node) the answer is undefined and the fixed list in
 * host-masks.ts applies.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { PACKAGE_PLACES } from './host-masks.js';
import type { FactsStore } from './node-facts.js';

/** A list file larger than this is not a dpkg list (the largest on Debian are a few MB). */
const MAX_LIST_BYTES = 64 * 1024 * 1024;

/** The first- and second-level entries of PACKAGE_PLACES named in dpkg list files' text. */
export function ownedEntries(listTexts: Iterable<string>): Set<string> {
  const out = new Set<string>();
  const ok = (n: string | undefined) => !!n && n !== '.' && n !== '..';
  for (const text of listTexts) {
    for (const line of text.split('\n')) {
      for (const place of PACKAGE_PLACES) {
        if (!line.startsWith(`${place}/`)) continue;
        const [name, child] = line.slice(place.length + 1).split('/');
        if (!ok(name)) continue;
        out.add(`${place}/${name}`);
        if (ok(child)) out.add(`${place}/${name}/${child}`);
      }
    }
  }
  return out;
}

interface CacheFile {
  key: string;
  owned: string[];
}

const memory = new Map<string, { key: string; owned: Set<string> }>();

/** The owned entries for the node at hostRoot, or undefined without dpkg. */
export async function packageOwned(hostRoot: string, store: FactsStore): Promise<Set<string> | undefined> {
  const info = path.join(hostRoot, 'var/lib/dpkg/info');
  const [st, si] = await Promise.all([stat(path.join(hostRoot, 'var/lib/dpkg/status')).catch(() => undefined), stat(info).catch(() => undefined)]);
  if (!si?.isDirectory()) return undefined;
  // v2: second-level entries and /usr/local too (a cache of the first form is made again).
  const key = `v2:${st?.mtimeMs ?? 0}:${si.mtimeMs}`;
  const mem = memory.get(hostRoot);
  if (mem?.key === key) return mem.owned;
  const cached = store.read('dpkg-owned') as CacheFile | undefined;
  if (cached?.key === key && Array.isArray(cached.owned) && cached.owned.every((p) => typeof p === 'string')) {
    const owned = new Set(cached.owned);
    memory.set(hostRoot, { key, owned });
    return owned;
  }
  const names = (await readdir(info)).filter((n) => n.endsWith('.list'));
  const texts: string[] = [];
  for (let i = 0; i < names.length; i += 32) {
    const batch = names.slice(i, i + 32).map(async (n) => {
      const p = path.join(info, n);
      const s = await stat(p).catch(() => undefined);
      return s?.isFile() && s.size <= MAX_LIST_BYTES ? readFile(p, 'utf8').catch(() => '') : '';
    });
    texts.push(...(await Promise.all(batch)));
  }
  const owned = ownedEntries(texts);
  // A cache that cannot be written is computed again next time; the answer is the same.
  await store.write('dpkg-owned', { key, owned: [...owned].sort() } satisfies CacheFile).catch(() => undefined);
  memory.set(hostRoot, { key, owned });
  return owned;
}
