/**
 * Host paths no container may mount: acetate's state and run dirs, anything in them, and every
 * ancestor of them (`/`, `/var/lib`, `/tmp` for a state dir under /tmp), which would show every
 * container's private area, record and log. Validation refuses them by the path as written, naming
 * the field, as soon as the dirs are known (the CLI sets them once per process, before loading any
 * manifest); the runtime checks again at every start with symlinks resolved (hostpath-guard.ts).
 */
import { realpathSync } from 'node:fs';
import path from 'node:path';

export interface ProtectedDir {
  dir: string;
  what: string;
}

let dirs: ProtectedDir[] = [];

/** The dirs of this acetate instance (state dir, run dir). */
export function setProtectedDirs(list: readonly ProtectedDir[]): void {
  dirs = list.map((d) => ({ dir: path.resolve(d.dir), what: d.what }));
}

export function protectedDirs(): readonly ProtectedDir[] {
  return dirs;
}

function problemOf(p: string, hostPath: string, via: string): string | undefined {
  for (const { dir, what } of dirs) {
    if (p === dir || dir.startsWith(p === '/' ? '/' : `${p}/`))
      return `'${hostPath}'${via} contains acetate's ${what} ${dir}: a container would see every container's private area, record and log`;
    if (p.startsWith(`${dir}/`)) return `'${hostPath}'${via} is inside acetate's ${what} ${dir}`;
  }
  return undefined;
}

/**
 * Why a hostPath may not be mounted, or undefined. The path as written, then where its symlinks
 * lead now (a symlink created later is caught at the container's next start).
 */
export function protectedHostPathProblem(hostPath: string): string | undefined {
  if (dirs.length === 0 || !hostPath.startsWith('/') || hostPath.includes('\0')) return undefined; // reported elsewhere
  const p = path.posix.normalize(hostPath).replace(/(.)\/+$/, '$1');
  const lexical = problemOf(p, hostPath, '');
  if (lexical) return lexical;
  let real: string;
  try {
    real = realpathSync.native(p);
  } catch {
    return undefined; // missing: nothing to resolve
  }
  return real === p ? undefined : problemOf(real, hostPath, ` (a symlink to ${real})`);
}
