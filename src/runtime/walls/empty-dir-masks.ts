/**
 * The masked dirs outside /proc (MASKED_PATHS: /sys/firmware) bound to one empty, read-only dir
 * of the node's instead of runc's mask for a dir, a tmpfs per container. Both show the container
 * an empty dir it cannot write to; the bind makes no superblock.
 *
 * Why: each superblock on the node takes a slot in every memory cgroup's shrinker map (the
 * kernel's mm/shrinker.c: 1 KiB per 64 superblocks in each cgroup, allocated for the node's
 * highest count ever), so what a container costs grows with the containers beside it: at 2,500
 * containers of 11 superblocks each, each container's cgroup held ~430 KiB of such maps (kmalloc-1k
 * in /proc/slabinfo; docs/benchmarks.md). runc refuses a bind mount inside /proc (its
 * checkProcMount): /proc/acpi keeps runc's tmpfs. A path that is no dir on this node is left to
 * runc as before (a file is bound to /dev/null, a missing one skipped).
 */
import { chmodSync, lstatSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { MASKED_PATHS } from './masks.js';
import type { OciMount } from './oci-mount.js';

/** The empty dir, under the state dir: acetate's (root's), 0555, never written to. */
export const EMPTY_DIR_NAME = 'empty';

/** The masked paths that are dirs outside /proc on this node (read once per process: sysfs' dirs do not come and go). */
let maskableDirs: string[] | undefined;

export function maskableByEmptyDir(isDir?: (p: string) => boolean): string[] {
  const of = (dir: (p: string) => boolean) => MASKED_PATHS.filter((p) => !p.startsWith('/proc/') && dir(p));
  return isDir ? of(isDir) : (maskableDirs ??= of(isNodeDir));
}

function isNodeDir(p: string): boolean {
  try {
    return lstatSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** The bind mounts over `paths` of the empty dir `source`: not recursive (nothing mounted under it comes along), read-only, nothing on it runs or is a device. */
export function emptyDirMounts(source: string, paths: readonly string[]): OciMount[] {
  return paths.map((destination) => ({ destination, type: 'bind', source, options: ['bind', 'rprivate', 'ro', 'nosuid', 'nodev', 'noexec'] }));
}

/**
 * `<stateDir>/empty`, made when missing. Undefined when what is there is not an empty dir of
 * acetate's own: the masks are then runc's (a tmpfs each), as before.
 */
export function ensureEmptyDir(stateDir: string): string | undefined {
  const dir = path.join(stateDir, EMPTY_DIR_NAME);
  try {
    mkdirSync(dir, { mode: 0o555 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') return undefined;
  }
  try {
    const st = lstatSync(dir);
    if (!st.isDirectory() || st.uid !== process.getuid!() || readdirSync(dir).length) return undefined;
    // Whatever the umask: a container's root (another uid) must cross it, and no one write to it.
    if ((st.mode & 0o7777) !== 0o555) chmodSync(dir, 0o555);
  } catch {
    return undefined;
  }
  return dir;
}
