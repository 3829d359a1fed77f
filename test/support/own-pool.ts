/**
 * A test file's own pool of node ids (ACETATE_USERNS_POOL), for tests that assert which range a
 * container gets. Ranges are the node's (src/runtime/walls/id-claims.ts): containers of test files
 * running beside it, on the default pool, hold that pool's first ranges. Each slot is 16 ranges
 * from 3,000,000,000 on, far from the default pool (1,000,000,000 + 10,000 ranges); one slot per
 * test file, named where it is used.
 */
import { RANGE_SIZE, type IdRange } from '../../src/runtime/walls/id-pool.js';

export const POOL_SLOTS = { idRanges: 0, isolation: 1, containerRoot: 2, combinations: 3, rangeBreakout: 4 } as const;

export function ownPool(slot: number): { pool: IdRange; first: IdRange; env: { ACETATE_USERNS_POOL: string } } {
  const pool = { hostID: 3_000_000_000 + slot * 16 * RANGE_SIZE, size: 16 * RANGE_SIZE };
  return { pool, first: { hostID: pool.hostID, size: RANGE_SIZE }, env: { ACETATE_USERNS_POOL: `${pool.hostID}:${pool.size}` } };
}
