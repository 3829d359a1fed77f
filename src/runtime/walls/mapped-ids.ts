/**
 * The node ids live processes run with through a user namespace: every namespace's uid_map, read
 * from /proc (one process per namespace). The allocator's backstop (id-ranges.ts): a range some
 * live process is mapped into is never given out, and a claim on one is never removed as stale,
 * whatever the records and claims say (a container an acetate before claims made, whose records
 * another instance never saw; a state dir moved away while its containers run).
 *
 * Cost: a readlink per process and a read per namespace: 100-140 ms with 10,079 processes (2,500
 * containers running, measured), on the loop's thread. So the allocator and a first start use
 * mappedRanges: a full read at most every MAPPED_TTL_MS, and in between only what is new (a
 * listing of /proc, the processes not seen before). A refusal or a removal of a claim reads
 * anew. It sees the
 * node's processes only from the node's pid namespace: in Kubernetes mode acetate's pod needs
 * hostPID (run-controller refuses to run without it where it joins the node's cgroups).
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import type { IdRange } from './id-pool.js';

const INIT_MAP = /^\s*0\s+0\s+4294967295\s*$/;

/** The host ranges of every user namespace but the node's own, read now. */
export function readMappedRanges(proc = '/proc'): IdRange[] {
  return readMappedNamespaces(proc).flatMap((n) => n.ranges);
}

/** Every user namespace but the node's own (its `ns/user` link) with its host ranges, read now. */
export function readMappedNamespaces(proc = '/proc'): { ns: string; ranges: IdRange[] }[] {
  const byNs = new Map<string, IdRange[] | undefined>();
  for (const pid of readdirSync(proc)) if (/^\d+$/.test(pid)) look(proc, pid, byNs);
  // The node's own maps no range ([]); one not mapped yet (undefined) runs with no id of the node.
  return [...byNs].flatMap(([ns, ranges]) => (ranges?.length ? [{ ns, ranges }] : []));
}

/** The user namespace of the process whose pid is in `pidFile` (a container's init), if it runs. */
export function userNamespaceOfPidFile(pidFile: string): string | undefined {
  try {
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    return Number.isSafeInteger(pid) && pid > 0 ? readlinkSync(`/proc/${pid}/ns/user`) : undefined;
  } catch {
    return undefined;
  }
}

/** How long a full read of /proc serves: between full reads only what is new is read (mappedRanges). */
export const MAPPED_TTL_MS = 30_000;

/** What a process's user namespace was at the last look: its ns link and host ranges (undefined: no uid_map written yet). */
interface Seen {
  ns: string;
  ranges: IdRange[] | undefined;
}

/**
 * A read younger than this is used as it is: one listing of /proc costs 7 ms with 4,000 processes
 * (~16 ms with 10,000), on the loop's thread, and the creates of an apply at concurrency 4 ask
 * ~17 times a second at 2,500 containers: at most 4 listings a second. A namespace another
 * program maps less than this before a create may be missed.
 */
export const MAPPED_FRESH_MS = 250;

let known: { at: number; listedAt: number; byPid: Map<string, Seen>; ranges: IdRange[] } | undefined;

/** One process's namespace, read now (undefined: gone meanwhile); `byNs`: the maps read in this listing. */
function look(proc: string, pid: string, byNs: Map<string, IdRange[] | undefined>): Seen | undefined {
  try {
    const ns = readlinkSync(`${proc}/${pid}/ns/user`);
    const had = byNs.get(ns);
    if (had !== undefined) return { ns, ranges: had };
    const map = readFileSync(`${proc}/${pid}/uid_map`, 'utf8');
    const ranges = INIT_MAP.test(map) ? [] : parseMap(map);
    // An empty map (a namespace made, not mapped yet) is looked at again at every read.
    const seen = { ns, ranges: map.trim() === '' ? undefined : ranges };
    byNs.set(ns, seen.ranges);
    return seen;
  } catch {
    return undefined;
  }
}

function parseMap(map: string): IdRange[] {
  const ranges: IdRange[] = [];
  for (const line of map.split('\n')) {
    const [, outside, count] = line.trim().split(/\s+/).map(Number);
    if (Number.isSafeInteger(outside) && Number.isSafeInteger(count) && count! > 0) ranges.push({ hostID: outside!, size: count! });
  }
  return ranges;
}

/**
 * The host ranges live processes run with, for the allocator and the first start of a container
 * (id-ranges.ts, id-range-held.ts). A full read (a readlink per process: 100-140 ms with 10,000
 * processes) at most every MAPPED_TTL_MS; in between, one listing of /proc and a look at the
 * processes not seen before and at namespaces seen unmapped: a namespace another program (another
 * engine, an acetate before claims) maps is found at the next create (a read younger than
 * MAPPED_FRESH_MS is used as it is). What a read in between does not see: a process seen before
 * that moves into a new user namespace (unshare(2) in place, not a new process), or a pid reused
 * within MAPPED_TTL_MS; the next full read does. `now` injected for tests.
 */
export function mappedRanges(now = Date.now(), proc = '/proc'): IdRange[] {
  if (known && now >= known.listedAt && now - known.listedAt < MAPPED_FRESH_MS) return known.ranges;
  const full = !known || now - known.at >= MAPPED_TTL_MS || now < known.at;
  const before = full ? new Map<string, Seen>() : known!.byPid;
  const byPid = new Map<string, Seen>();
  // The maps read in this listing only: a namespace number freed since the last one is given to
  // the next namespace made (the kernel takes the lowest free), which may map other ids.
  const byNs = new Map<string, IdRange[] | undefined>();
  for (const pid of readdirSync(proc)) {
    if (!/^\d+$/.test(pid)) continue;
    const had = before.get(pid);
    const seen = had && had.ranges !== undefined ? had : look(proc, pid, byNs);
    if (seen) byPid.set(pid, seen);
  }
  const out = new Map<string, IdRange[]>();
  for (const s of byPid.values()) if (s.ranges?.length) out.set(s.ns, s.ranges);
  const ranges = [...out.values()].flat();
  known = { at: full ? now : known!.at, listedAt: now, byPid, ranges };
  return ranges;
}

/** The next mappedRanges reads every process anew (tests; a refusal's last look). */
export function forgetMappedRanges(): void {
  known = undefined;
}
