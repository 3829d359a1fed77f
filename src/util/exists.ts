import { existsNow } from './small-file.js';

/** Whether a path exists (any error, e.g. ENOENT or EACCES, counts as no). A local check: see small-file.ts. */
export async function exists(p: string): Promise<boolean> {
  return existsNow(p);
}
