/**
 * The node's claims on id ranges: one small file per range held, <dir>/<hostID>, naming its owner
 * as a record does ({ "owner": { "stateDir": …, "container": … } }).
 *
 * Why, beside the records (id-records.ts): the records are shared only by the instances given the
 * same records file (ACETATE_ID_RECORDS). Two instances given two files each read only their own
 * and handed out one range twice: two tenants' roots one node user, each owning the other's files
 * (a hostile tester's finding). The claims' place is not a setting: every acetate of the node uses
 * /var/lib/acetate/id-claims, and takes the allocation lock as /var/lib/acetate/id-ranges.lock
 * whatever its records file, so every allocation of the node is serialized by one flock and every
 * claim is read and written under it. (Code may pass other places: the allocator's own tests.)
 *
 * A claim is live while its owner's container dir exists and its ids.json still holds the range
 * (the range it runs with, or the owner of its private area's files not yet re-owned): the claim
 * of a destroyed container (removed at the destroy; left by a crash) or of a range given up is
 * removed by the next allocation that meets it. Claims are compared by overlap, not by name, so
 * pools cut on other boundaries are kept apart too. Before each start, a container whose
 * range another live owner claims is refused (id-ranges.ts checkRangeHeld; a read, no lock: claims
 * are replaced whole). The dir is root's, 0700, and every claim is read as the records are: a plain
 * file, root's, bounded.
 */
import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { writeFileAtomicSync } from '../../util/small-file.js';
import { readTrustedFileSync, refuseUntrustedDirSync } from '../../util/trusted-file.js';
import { IdPoolError, RANGE_SIZE, rangesOverlap, type IdRange } from './id-pool.js';
import type { IdRecordOwner } from './id-records.js';

export interface IdClaims {
  /** One file per range held, named by its first id. */
  dir: string;
  /** The node's allocation lock (a flock, id-lock.ts), taken instead of the records file's own. */
  lockFile: string;
}

export const NODE_ID_CLAIMS: IdClaims = { dir: '/var/lib/acetate/id-claims', lockFile: '/var/lib/acetate/id-ranges.lock' };

/** Whether `owner`'s container still holds the range starting at hostID (its ids.json; id-ranges.ts). */
export type HoldsRange = (owner: IdRecordOwner, hostID: number) => Promise<boolean>;

const TRUST = {
  what: "the node's claim on an id range",
  maxBytes: 8192,
  error: (message: string, cause?: unknown) => new IdPoolError(message, cause === undefined ? undefined : { cause }),
};

const claimFile = (claims: IdClaims, hostID: number): string => path.join(claims.dir, String(hostID));

export const sameOwner = (a: IdRecordOwner, b: IdRecordOwner): boolean => a.container === b.container && path.resolve(a.stateDir) === path.resolve(b.stateDir);

/** The owner the claim on the range at hostID names; undefined when none. Throws (IdPoolError naming the file) on one that is not root's alone or malformed: never read as free. */
export function readClaim(claims: IdClaims, hostID: number): IdRecordOwner | undefined {
  const file = claimFile(claims, hostID);
  const text = readTrustedFileSync(file, TRUST);
  if (text === undefined) return undefined;
  let owner: IdRecordOwner | undefined;
  try {
    owner = (JSON.parse(text) as { owner?: IdRecordOwner }).owner;
  } catch (err) {
    throw new IdPoolError(`${file}: not JSON (${(err as Error).message}): remove it once no container of the node runs with ids ${hostID}…`, { cause: err });
  }
  if (typeof owner?.stateDir !== 'string' || typeof owner.container !== 'string' || !path.isAbsolute(owner.stateDir)) {
    throw new IdPoolError(`${file}: no owner { stateDir, container } in it: remove it once no container of the node runs with ids ${hostID}…`);
  }
  return { stateDir: owner.stateDir, container: owner.container };
}

/** The first ids of every claim (the dir's names; files being written have other names). */
export function claimedStarts(claims: IdClaims): number[] {
  let names: string[];
  try {
    names = readdirSync(claims.dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new IdPoolError(`${claims.dir}: cannot list the node's id claims (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
  }
  return names.filter((n) => /^\d{1,10}$/.test(n)).map(Number);
}

/**
 * Claims of live owners other than `self` on ranges overlapping `range`, whatever their start: two
 * pools need not be cut on the same boundaries (--userns-pool FIRST is any id ≥ 65536), so a claim
 * is looked for by overlap, not by name. One listing of the dir per call (no cache: two writes
 * within one tick of the dir's mtime would look like none; `starts`: a listing the caller took
 * under the lock, for many ranges at once). `prune`, under the node's lock only:
 * stale claims found on the way are removed (a crashed owner's), as their takeover would.
 */
export async function liveClaimsOverlapping(
  claims: IdClaims,
  range: IdRange,
  self: IdRecordOwner,
  holds: HoldsRange,
  opts: { prune?: boolean; starts?: readonly number[] } = {},
): Promise<{ range: IdRange; owner: IdRecordOwner }[]> {
  const out: { range: IdRange; owner: IdRecordOwner }[] = [];
  for (const hostID of opts.starts ?? claimedStarts(claims)) {
    const claimed = { hostID, size: RANGE_SIZE };
    if (!rangesOverlap(claimed, range)) continue;
    const owner = readClaim(claims, hostID);
    if (!owner || sameOwner(owner, self)) continue;
    if (await holds(owner, hostID)) out.push({ range: claimed, owner });
    else if (opts.prune) rmSync(claimFile(claims, hostID), { force: true });
  }
  return out;
}

/** Under the node's allocation lock: the ranges claimed for `owner` (a claim of anyone else's is replaced: callers checked it is stale). */
export function writeClaims(claims: IdClaims, owner: IdRecordOwner, ranges: readonly IdRange[]): void {
  if (!ranges.length) return;
  refuseUntrustedDirSync(claimFile(claims, 0), TRUST);
  mkdirSync(claims.dir, { recursive: true, mode: 0o700 });
  for (const r of ranges) {
    if (r.size !== RANGE_SIZE) continue; // only the allocator's ranges (an earlier shared range is in no pool)
    const mine = readClaim(claims, r.hostID);
    if (mine && sameOwner(mine, owner)) continue;
    writeFileAtomicSync(
      claimFile(claims, r.hostID),
      `${JSON.stringify({ owner: { stateDir: path.resolve(owner.stateDir), container: owner.container } })}\n`,
      0o600,
    );
  }
}

/** Under the node's allocation lock: `owner`'s claims on these ranges removed (another's are left). */
export function dropClaims(claims: IdClaims, owner: IdRecordOwner, ranges: readonly IdRange[]): void {
  for (const r of ranges) {
    const held = readClaim(claims, r.hostID);
    if (held && sameOwner(held, owner)) rmSync(claimFile(claims, r.hostID), { force: true });
  }
}

/** Every claim's first id and owner (test cleanup and leak checks; not on any hot path: one read per claim). */
export function listClaims(claims: IdClaims): { hostID: number; owner: IdRecordOwner }[] {
  let names: string[];
  try {
    if (!statSync(claims.dir).isDirectory()) return [];
    names = readdirSync(claims.dir);
  } catch {
    return [];
  }
  const out: { hostID: number; owner: IdRecordOwner }[] = [];
  for (const n of names) {
    if (!/^\d+$/.test(n)) continue;
    const owner = readClaim(claims, Number(n));
    if (owner) out.push({ hostID: Number(n), owner });
  }
  return out;
}
