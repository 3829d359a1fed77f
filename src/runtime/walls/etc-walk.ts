/**
 * The entries of the node's /etc, at any depth, that only their owner may read (mode without any
 * group or other bit: a service's keys, /etc/security/opasswd, polkit's rules): the host template
 * hides them (host-masks.ts) as it hides the ssh host keys by name.
 *
 * Cost: one lstat per entry of /etc (≈1,200 on a Debian node; measured in the README), at most
 * once a minute per acetate process and again at once when /etc's own mtime changed: a start
 * otherwise takes the cached answer (a start must not cost in proportion to the node's files).
 * `acetate run` keeps it: the next pass of host-view-watch.ts after a minute sees a chmod.
 */
import { lstat, readdir, stat } from 'node:fs/promises';
import path from 'node:path';

/** A walk stops after this many entries (an /etc this large is not one acetate expects). */
const MAX_ENTRIES = 100_000;
/** How long a walk's answer is used without walking again (unless /etc's mtime changed). */
export const ETC_WALK_TTL_MS = 60_000;

export interface OwnerOnly {
  path: string;
  mode: number;
}

/** Entries under dir (a node path) whose mode has no group/other bits; not below one another. */
export async function ownerOnlyEntries(hostRoot: string, dir = '/etc'): Promise<OwnerOnly[]> {
  const out: OwnerOnly[] = [];
  const stack = [dir];
  let seen = 0;
  while (stack.length && seen < MAX_ENTRIES) {
    const d = stack.pop()!;
    const names = await readdir(path.join(hostRoot, d)).catch(() => [] as string[]);
    const batch = names.slice(0, Math.max(0, MAX_ENTRIES - seen));
    seen += batch.length;
    // One dir's entries at once (≈ 10 in flight on average): the walk is bound by lstat's latency.
    const stats = await Promise.all(batch.map((n) => lstat(path.join(hostRoot, d, n)).catch(() => undefined)));
    batch.forEach((n, i) => {
      const st = stats[i];
      const p = path.posix.join(d, n);
      if (!st || st.isSymbolicLink()) return;
      if ((st.mode & 0o077) === 0) out.push({ path: p, mode: st.mode & 0o7777 });
      else if (st.isDirectory()) stack.push(p);
    });
  }
  return out.sort((a, b) => a.path.localeCompare(b.path));
}

const memory = new Map<string, { at: number; mtime: number; entries: OwnerOnly[] }>();

/** ownerOnlyEntries of /etc, cached (see the file's comment); `now` injected for tests. */
export async function etcOwnerOnly(hostRoot: string, now = Date.now()): Promise<OwnerOnly[]> {
  const mtime = await stat(path.join(hostRoot, 'etc')).then(
    (s) => s.mtimeMs,
    () => 0,
  );
  const had = memory.get(hostRoot);
  if (had && had.mtime === mtime && now - had.at < ETC_WALK_TTL_MS) return had.entries;
  const entries = await ownerOnlyEntries(hostRoot);
  // The same array while the answer is the same: the view built from it stays the same object.
  const same = had && JSON.stringify(had.entries) === JSON.stringify(entries);
  memory.set(hostRoot, { at: now, mtime, entries: same ? had.entries : entries });
  return same ? had.entries : entries;
}
