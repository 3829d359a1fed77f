/**
 * A hostPath mount of an ancestor of acetate's state or run dir (`/`, `/var`, `/var/lib`, `/tmp`
 * for a state dir under /tmp...) would show the container every container's private area, record
 * and log, and the run dir's pid files, as mounting the dirs themselves would (refused beside, in
 * runc-runtime.ts). Both the path as written and where its symlinks lead are checked, at every
 * check, create and start: a symlink planted later is caught when the container next starts.
 */
import { realpath } from 'node:fs/promises';
import path from 'node:path';
import { OciConfigError } from './errors.js';

export interface OwnDir {
  dir: string;
  what: string;
}

function isAncestor(a: string, of: string): boolean {
  return a === '/' ? of !== '/' : of.startsWith(`${a}/`);
}

/** Throws, naming the field (spec.mounts[i].hostPath), when a mount is an ancestor of an own dir. */
export async function refuseOwnDirAncestors(mounts: readonly { hostPath: string }[], own: readonly OwnDir[], hostRoot: string): Promise<void> {
  for (const [i, m] of mounts.entries()) {
    const host = path.resolve(path.join(hostRoot, m.hostPath));
    const real = await realpath(host).catch(() => host);
    for (const p of [host, real]) {
      const hit = own.find(({ dir }) => isAncestor(p, dir));
      if (!hit) continue;
      const via = p === host ? '' : ` (a symlink to ${p})`;
      throw new OciConfigError(
        `spec.mounts[${i}].hostPath: '${m.hostPath}'${via} contains acetate's ${hit.what} ${hit.dir}: refused (it would show every container's private area)`,
      );
    }
  }
}
