/**
 * How a runc node stores resource values (Runtime.granularity): the kernel rounds a cgroup's
 * memory.max down to a page, and a private area's disk image is whole XFS blocks (rounded up).
 * The plan compares with these facts instead of knowing kernel constants itself.
 */
import { DISK_BLOCK } from '../../api/quantity.js';
import type { ResourceGranularity } from '../runtime.js';
import { MEMORY_GRANULARITY } from './cgroups.js';

export const RUNC_GRANULARITY: ResourceGranularity = Object.freeze({
  memory: { step: MEMORY_GRANULARITY, rounding: 'down' },
  disk: { step: DISK_BLOCK, rounding: 'up' },
});
