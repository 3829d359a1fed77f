import { access } from 'node:fs/promises';

/** Whether a path exists (any error, e.g. ENOENT or EACCES, counts as no). */
export async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}
