/**
 * At each start of a host-template container: are the markers host-view.json records as placed
 * still in its upper dir? The upper dir is the range's (overlayfs mounted inside the user namespace
 * needs that), so a process that escaped the container as the range's root can delete a whiteout
 * or an opaque dir there, or take the opaque xattr off a dir (user.overlay.*, which the owner may
 * change), and the node's entry shows again. host-view.json is node root's (userns.ts
 * closeContainerDir), but it would still say "placed": without this check a restart would not put
 * the marker back.
 *
 * What the container itself wrote over a marker stays its own: through overlayfs, a file or
 * symlink there hides the node's entry, and a dir made over a whiteout or an opaque dir is
 * opaque. So only these are undone: a marker gone (forgotten here, host-view.ts places it again),
 * and a dir at a hiding marker's place that is not opaque (made opaque again: no write through
 * overlayfs leaves one). Cost: one lstat per marker in the upper dir (its machine id, what the
 * watcher placed there; all ~100 for a container made before the shared layer, host-layer.ts), and
 * with a user namespace one getfattr for all the dirs among them (a restart, not a create).
 */
import { closeSync } from 'node:fs';
import { exec } from '../../util/exec.js';
import { OPAQUE_XATTRS, type Record_ } from './host-markers.js';
import { fdPathForChild, lstatEntry, openOwnDir, openParent } from './upper-beneath.js';

/** getfattr's spelling of a path in its `# file:` lines (LC_ALL=C: `\ooo` for `\` and every byte outside printable ASCII). */
function getfattrQuoted(p: string): string {
  let out = '';
  for (const b of Buffer.from(p)) out += b === 0x5c || b < 0x20 || b > 0x7e ? `\\${b.toString(8).padStart(3, '0')}` : String.fromCharCode(b);
  return out;
}

/** Of `dirs` (open dirs named by their /proc fd links, which getfattr follows), those that carry `name` = y (one getfattr for all). */
async function withXattr(dirs: readonly string[], name: string): Promise<Set<string>> {
  const r = await exec('getfattr', ['--absolute-names', '-n', name, '--', ...dirs], { okExitCodes: [0, 1], env: { ...process.env, LC_ALL: 'C' } });
  const set = new Set<string>();
  let file: string | undefined;
  for (const line of r.stdout.split('\n')) {
    if (line.startsWith('# file: ')) file = line.slice('# file: '.length);
    else if (file !== undefined && line === `${name}="y"`) set.add(file);
  }
  const byQuoted = new Map(dirs.map((d) => [getfattrQuoted(d), d]));
  return new Set([...set].map((q) => byQuoted.get(q)).filter((d): d is string => d !== undefined));
}

/**
 * Drops from `rec` the markers no longer in `upper` (host-view.ts places them again) and makes
 * opaque again a dir at a hiding marker's place that lost it. `userns`: overlayfs reads
 * user.overlay.opaque (mounted with userxattr), which the range's root can remove; without one,
 * trusted.overlay.*, which only node root can. Returns how many it changed.
 */
export async function recheckPlaced(rec: Record_, upper: string, userns: boolean): Promise<number> {
  let changed = 0;
  // Each hiding dir opened (not through a link: upper-beneath.ts), named to getfattr and setfattr
  // by its fd: a link the range left at a marker's place or above it leads nowhere on the node.
  const dirs = new Map<string, number>();
  try {
    for (const [p, r] of Object.entries(rec)) {
      const parent = await openParent(upper, p);
      let st: Awaited<ReturnType<typeof lstatEntry>>;
      let dir: number | undefined;
      try {
        st = parent && (await lstatEntry(parent));
        dir = parent && st?.isDirectory() && (r.kind === 'absent' || r.kind === 'empty') ? openOwnDir(parent) : undefined;
      } finally {
        if (parent) closeSync(parent.fd);
      }
      if (!st) {
        delete rec[p];
        changed++;
      } else if (dir !== undefined) dirs.set(fdPathForChild(dir), dir);
    }
    // Without a user namespace the container's root is node root: no id outside it could remove trusted.*.
    if (!dirs.size || !userns) return changed;
    const opaque = await withXattr([...dirs.keys()], userns ? 'user.overlay.opaque' : 'trusted.overlay.opaque');
    for (const d of dirs.keys()) {
      if (opaque.has(d)) continue;
      for (const n of OPAQUE_XATTRS) await exec('setfattr', ['-n', n, '-v', 'y', '--', d]);
      changed++;
    }
    return changed;
  } finally {
    for (const fd of dirs.values()) closeSync(fd);
  }
}
