/** Finding an executable by name or path, as a shell would, plus the sbin dirs PATH often lacks. */
import { access, constants } from 'node:fs/promises';
import path from 'node:path';

/** Directories searched for a bare binary name besides $PATH (sbin is often missing from PATH). */
const EXTRA_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

async function isExecutable(p: string): Promise<boolean> {
  try {
    await access(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Absolute path of a binary given as a path or a bare name; undefined if not found. */
export async function findBinary(nameOrPath: string): Promise<string | undefined> {
  if (nameOrPath.includes('/')) {
    const abs = path.resolve(nameOrPath);
    return (await isExecutable(abs)) ? abs : undefined;
  }
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), ...EXTRA_DIRS];
  for (const d of dirs) {
    const p = path.join(d, nameOrPath);
    if (await isExecutable(p)) return p;
  }
  return undefined;
}
