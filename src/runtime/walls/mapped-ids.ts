/**
 * The node ids live processes run with through a user namespace: every namespace's uid_map, read
 * from /proc (one process per namespace). The allocator's backstop (id-ranges.ts): a range some
 * live process is mapped into is never given out, and a claim on one is never removed as stale,
 * whatever the records and claims say (a container an acetate before claims made, whose records
 * another instance never saw; a state dir moved away while its containers run).
 *
 * Cost: a readlink per process and a read per namespace (≈ 30 ms with 10,000 processes), once per
 * hold of the node's allocation lock (id-lock.ts holdOf), not once per allocation. It sees the
 * node's processes only from the node's pid namespace: in Kubernetes mode acetate's pod needs
 * hostPID (run-controller refuses to run without it where it joins the node's cgroups).
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import type { IdRange } from './id-pool.js';
import { holdOf } from './id-lock.js';

const INIT_MAP = /^\s*0\s+0\s+4294967295\s*$/;

/** The host ranges of every user namespace but the node's own, read now. */
export function readMappedRanges(proc = '/proc'): IdRange[] {
  const seen = new Set<string>();
  const out: IdRange[] = [];
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
    for (const line of map.split('\n')) {
      const [, outside, count] = line.trim().split(/\s+/).map(Number);
      if (Number.isSafeInteger(outside) && Number.isSafeInteger(count) && count! > 0) out.push({ hostID: outside!, size: count! });
    }
  }
  return out;
}

const cached = new Map<string, { hold: number; ranges: IdRange[] }>();

/** readMappedRanges, once per hold of `lockFile` (read now when it is not held). */
export function mappedRanges(lockFile: string): IdRange[] {
  const hold = holdOf(lockFile);
  const had = cached.get(lockFile);
  if (hold !== undefined && had?.hold === hold) return had.ranges;
  const ranges = readMappedRanges();
  if (hold !== undefined) cached.set(lockFile, { hold, ranges });
  return ranges;
}
