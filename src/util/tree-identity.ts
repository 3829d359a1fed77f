/**
 * Which file system tree a process sees a directory in: its mount namespace, its root and the
 * directory itself. Two processes given the same path name the same directory only when all three
 * are the same: a `plan` run under `unshare -m`, in a chroot or a service's private /tmp can see
 * other files under the very path the loop watches (cli/loop-planner.ts compares the two).
 */
import { readlinkSync, statSync } from 'node:fs';

function idOf(p: string): string {
  const st = statSync(p, { throwIfNoEntry: false });
  return st ? `${st.dev}:${st.ino}` : '-';
}

export function treeIdentity(dir: string): string {
  let ns = '-';
  try {
    ns = readlinkSync('/proc/self/ns/mnt');
  } catch {
    // no /proc: compared as '-' on both sides, the root and the directory still tell
  }
  return `${ns} ${idOf('/')} ${idOf(dir)}`;
}
