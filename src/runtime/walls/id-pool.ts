/**
 * The node's pool of ids for user namespaces, and the ranges of 65536 ids it is cut into: one range
 * per unprivileged container, as Kubernetes gives each pod (KEP-127), so that a container whose
 * root breaks out owns none of its neighbours' files. Pure: what the allocator (id-ranges.ts) and
 * the plan (which predicts the range a container will get) share.
 *
 * The pool is a node option: `--userns-pool FIRST:COUNT` or ACETATE_USERNS_POOL (COUNT ids from
 * FIRST, at least one range). ACETATE_USERNS_RANGE, the earlier name of the setting (one range all
 * unprivileged containers shared), is read as the pool when ACETATE_USERNS_POOL is not set: its
 * FIRST stays the first id, its COUNT now holds COUNT/65536 containers' ranges.
 */

/** A run of ids: container id 0 maps to hostID. */
export interface IdRange {
  hostID: number;
  size: number;
}

/** The ids every container's range holds: 0..65535 in the container, as Kubernetes and Incus give. */
export const RANGE_SIZE = 65_536;

/**
 * 1 000 000 000 onwards (Incus' and acetate's earlier shared range started there), room for 10 000
 * containers: far above the ids /etc/subuid hands to the node's users (100000+) and below 2^32-1.
 */
export const DEFAULT_USERNS_POOL: IdRange = { hostID: 1_000_000_000, size: RANGE_SIZE * 10_000 };

/** The highest id a range may reach: 2^32-1 is (uid_t)-1, "no id". */
const LAST_ID = 4_294_967_294;

export class IdPoolError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'IdPoolError';
  }
}

/** `FIRST:COUNT` → a pool; `what` names the flag or variable in the error. */
export function parseIdPool(value: string, what: string): IdRange {
  const m = /^(\d+):(\d+)$/.exec(value.trim());
  const hostID = m ? Number(m[1]) : NaN;
  const size = m ? Number(m[2]) : NaN;
  if (!m || hostID < RANGE_SIZE || size < RANGE_SIZE || hostID + size - 1 > LAST_ID) {
    throw new IdPoolError(
      `${what} '${value}' must be FIRST:COUNT with FIRST ≥ 65536 (the node's own users' ids stay out), COUNT ≥ 65536 (one container's range) and FIRST+COUNT-1 ≤ ${LAST_ID}`,
    );
  }
  return { hostID, size };
}

/** The range lies wholly in the pool, on a range boundary of it (as the allocator cuts it). */
export function rangeInPool(range: IdRange, pool: IdRange): boolean {
  return (
    range.size === RANGE_SIZE &&
    range.hostID >= pool.hostID &&
    range.hostID + range.size <= pool.hostID + pool.size &&
    (range.hostID - pool.hostID) % RANGE_SIZE === 0
  );
}

export function rangesOverlap(a: IdRange, b: IdRange): boolean {
  return a.hostID < b.hostID + b.size && b.hostID < a.hostID + a.size;
}

/** The lowest range of the pool that overlaps none of `used`, or undefined when the pool is full. */
export function lowestFreeRange(pool: IdRange, used: readonly IdRange[]): IdRange | undefined {
  const sorted = [...used].sort((a, b) => a.hostID - b.hostID);
  let candidate = pool.hostID;
  const end = pool.hostID + pool.size;
  for (const u of sorted) {
    if (candidate + RANGE_SIZE > end) return undefined;
    if (u.hostID + u.size <= candidate) continue;
    if (u.hostID >= candidate + RANGE_SIZE) break;
    // Overlaps the candidate: the next range boundary of the pool after u.
    candidate = pool.hostID + Math.ceil((u.hostID + u.size - pool.hostID) / RANGE_SIZE) * RANGE_SIZE;
  }
  return candidate + RANGE_SIZE <= end ? { hostID: candidate, size: RANGE_SIZE } : undefined;
}

/** `1000065536-1000131071`, as `get -o wide` and `describe` show it. */
export function formatIdRange(r: IdRange): string {
  return `${r.hostID}-${r.hostID + r.size - 1}`;
}
