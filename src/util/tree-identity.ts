/**
 * Where a process sees a directory from: its mount namespace, its root and the directory itself,
 * and its network namespace. Two processes given the same path read the same manifests the same
 * way only when all are the same: a `plan` run under `unshare -m`, in a chroot or a service's
 * private /tmp can see other files under the very path the loop watches, and one under `unshare
 * -n` other node addresses for the hostIPs it checks (cli/loop-planner.ts compares the two).
 */
import { readlinkSync, statSync } from 'node:fs';

function idOf(p: string): string {
  const st = statSync(p, { throwIfNoEntry: false });
  return st ? `${st.dev}:${st.ino}` : '-';
}

function nsOf(kind: 'mnt' | 'net'): string {
  try {
    return readlinkSync(`/proc/self/ns/${kind}`);
  } catch {
    return '-'; // no /proc: compared as '-' on both sides, the root and the directory still tell
  }
}

export function treeIdentity(dir: string): string {
  return `${nsOf('mnt')} ${nsOf('net')} ${idOf('/')} ${idOf(dir)}`;
}
