/**
 * The async helpers runc-runtime.ts imports from here; new code imports util/keyed-mutex.ts,
 * util/poll.ts and p-limit.
 */
import pLimit from 'p-limit';

export { KeyedMutex } from '../../util/keyed-mutex.js';
export { pollUntil, realSleep, type Sleep } from '../../util/poll.js';

/** map with at most `limit` callbacks in flight; results in input order. */
export function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  return pLimit(limit).map(items, (item) => fn(item));
}
