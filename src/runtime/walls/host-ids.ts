/**
 * Which of the node's ids the host template's lower `/` maps into a user-namespaced container
 * (idmap.ts, native/acetate-idmap --ids): only those that own the operating system's files.
 *
 * Why: the lower is the node's live `/`, so a dir a service makes under /var/lib after the
 * container started is in it at once, before any marker can hide it (host-view-watch.ts hides
 * it within a moment while `acetate run` runs; nothing does after a bare `apply`). Through an
 * idmapped mount a file whose owner is not mapped is seen as nobody/nogroup, and the kernel lets
 * a namespace's root override permissions only on inodes whose user AND group it maps
 * (privileged_wrt_inode_uidgid): a service's 0700 data dir (postgres, mysql: their own users) is
 * closed to the container's root from the first moment, whether acetate runs or not.
 *
 * The ids of the OS' files, so built:
 *  - 0–99: Debian's static system users and groups (base-passwd: root, daemon, bin, sys, man,
 *    mail, _apt 42, shadow 42, utmp, staff, …), the only owners dpkg itself gives shipped files;
 *  - 65534: nobody and nogroup;
 *  - the users and groups /var/lib/dpkg/statoverride gives an OS file (paths under /usr, /etc,
 *    /bin, /sbin, /lib*): how a package gives its files another owner (messagebus' launch helper,
 *    ssl-cert's /etc/ssl/private), read with /etc/passwd and /etc/group; at most 300 of each.
 *  - ACETATE_HOST_IDS (node setting): more ids, `1000,2000-2010`.
 * Dynamic service users (100–999) and people (1000+) own the node's data, not its OS.
 *
 * What it costs: the container's own processes may still take any id of its range (its files are
 * in its private area); only the node's files of unmapped owners are read as nobody's: a package
 * that chowns a shipped file to a dynamic user without statoverride (rare: its files are
 * usually its data) is read-only to the container's root (copy-up of such a file fails, EOVERFLOW).
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { IdPoolError } from './id-pool.js';

export interface HostIds {
  /** `0-99,65534,…` as acetate-idmap --ids takes it. */
  uids: string;
  gids: string;
}

const STATIC_IDS = [[0, 99] as const, [65534, 65534] as const];
const OS_PREFIXES = ['/usr/', '/etc/', '/bin/', '/sbin/', '/lib'];
const MAX_EXTRA = 300;
const MAX_FILE = 4 * 1024 * 1024;

/** Sorted, merged `a-b,c` of these ids (each below 65536). */
export function idList(ids: Iterable<number>): string {
  const sorted = [...new Set(ids)].filter((i) => Number.isInteger(i) && i >= 0 && i < 65536).sort((a, b) => a - b);
  const out: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    out.push(sorted[i] === sorted[j] ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return out.join(',');
}

/** `1000,2000-2010` → ids; a malformed part is an error naming the setting. */
export function parseIdSetting(value: string, what: string): number[] {
  const out: number[] = [];
  for (const part of value
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    const a = Number(m?.[1]);
    const b = Number(m?.[2] ?? m?.[1]);
    if (!m || b < a || b >= 65536 || b - a > 65535) throw new IdPoolError(`${what}: '${part}' is not an id or range of ids below 65536 (e.g. 1000,2000-2010)`);
    for (let i = a; i <= b; i++) out.push(i);
  }
  return out;
}

/** name → id of /etc/passwd or /etc/group text. */
function ids(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length >= 3 && /^\d+$/.test(f[2]!)) out.set(f[0]!, Number(f[2]));
  }
  return out;
}

/** The statoverride's owners of OS files: {users, groups} ids, from its text and passwd/group. */
export function statoverrideIds(statoverride: string, passwd: string, group: string): { users: number[]; groups: number[] } {
  const u = ids(passwd);
  const g = ids(group);
  const users: number[] = [];
  const groups: number[] = [];
  for (const line of statoverride.split('\n')) {
    const [user, grp, , file] = line.trim().split(/\s+/);
    if (!file || !OS_PREFIXES.some((p) => file.startsWith(p))) continue;
    const uid = user?.startsWith('#') ? Number(user.slice(1)) : u.get(user ?? '');
    const gid = grp?.startsWith('#') ? Number(grp.slice(1)) : g.get(grp ?? '');
    if (uid !== undefined && users.length < MAX_EXTRA) users.push(uid);
    if (gid !== undefined && groups.length < MAX_EXTRA) groups.push(gid);
  }
  return { users, groups };
}

const read = (p: string) =>
  stat(p).then(
    (s) => (s.isFile() && s.size <= MAX_FILE ? readFile(p, 'utf8') : ''),
    () => '',
  );

const memory = new Map<string, { key: string; ids: HostIds }>();

/** The ids of the node's OS files (cached by the three files' mtimes). */
export async function hostOsIds(hostRoot: string, extra: readonly number[] = []): Promise<HostIds> {
  const files = ['var/lib/dpkg/statoverride', 'etc/passwd', 'etc/group'].map((f) => path.join(hostRoot, f));
  const mtimes = await Promise.all(
    files.map((f) =>
      stat(f).then(
        (s) => s.mtimeMs,
        () => 0,
      ),
    ),
  );
  const key = `${mtimes.join(':')}|${extra.join(',')}`;
  const had = memory.get(hostRoot);
  if (had?.key === key) return had.ids;
  const [so, pw, gr] = await Promise.all(files.map(read));
  const { users, groups } = statoverrideIds(so!, pw!, gr!);
  const base = STATIC_IDS.flatMap(([a, b]) => Array.from({ length: b - a + 1 }, (_, i) => a + i));
  const out = { uids: idList([...base, ...users, ...extra]), gids: idList([...base, ...groups, ...extra]) };
  memory.set(hostRoot, { key, ids: out });
  return out;
}
