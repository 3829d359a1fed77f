/**
 * The node ids live processes run with through a user namespace: every namespace's uid_map, read
 * from /proc (one process per namespace). The allocator's backstop (id-ranges.ts): a range some
 * live process is mapped into is never given out, and a claim on one is never removed as stale,
 * whatever the records and claims say (a container an acetate before claims made, whose records
 * another instance never saw; a state dir moved away while its containers run).
 *
 * Cost: a readlink per process and a read per namespace: 100-140 ms with 10,079 processes (2,500
 * containers running, measured). For the allocator's exclusions the last read is used for up to
 * MAPPED_TTL_MS: read once per lock hold (taken again every second in a long apply), an apply of
 * 2,500 containers took 137 s, against 131 s with the TTL. What it guards against appears outside acetate's own claims (an acetate before claims,
 * a state dir moved away), not between two creates of one apply. A refusal or a removal of a claim
 * reads anew. It sees the
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
  const seen = new Set<string>();
  const out: { ns: string; ranges: IdRange[] }[] = [];
  for (const pid of readdirSync(proc)) {
    if (!/^\d+$/.test(pid)) continue;
    let ns: string;
    let map: string;
    try {
      ns = readlinkSync(`${proc}/${pid}/ns/user`);
      if (seen.has(ns)) continue;
      map = readFileSync(`${proc}/${pid}/uid_map`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    seen.add(ns);
    if (INIT_MAP.test(map)) continue;
    const ranges: IdRange[] = [];
    for (const line of map.split('\n')) {
      const [, outside, count] = line.trim().split(/\s+/).map(Number);
      if (Number.isSafeInteger(outside) && Number.isSafeInteger(count) && count! > 0) ranges.push({ hostID: outside!, size: count! });
    }
    out.push({ ns, ranges });
  }
  return out;
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

/** How long the allocator uses one read of /proc. */
export const MAPPED_TTL_MS = 30_000;

let cached: { at: number; ranges: IdRange[] } | undefined;

/** readMappedRanges, read again when the last read is older than MAPPED_TTL_MS (`now` injected for tests). */
export function mappedRanges(now = Date.now()): IdRange[] {
  if (cached && now - cached.at < MAPPED_TTL_MS && now >= cached.at) return cached.ranges;
  cached = { at: now, ranges: readMappedRanges() };
  return cached.ranges;
}

/** The next mappedRanges reads /proc (tests; a full look of the allocator). */
export function forgetMappedRanges(): void {
  cached = undefined;
}
