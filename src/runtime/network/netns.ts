/**
 * Persistent network namespaces: a namespace that outlives the processes in it, held by a bind
 * mount of its nsfs file (what `ip netns add` does under /run/netns). acetate keeps them under its
 * own run dir, `<runDir>/netns/<id>`, so they are the instance's, and a reboot (which empties the
 * run dir's tmpfs) ends them with the processes. Created with util-linux's `unshare --net=FILE`.
 */
import { closeSync, openSync, statfsSync } from 'node:fs';
import path from 'node:path';
import { exec } from '../../util/exec.js';
import { existsNow, makeDirs, removePaths } from '../../util/small-file.js';
import { unmountAll } from '../../util/mounts.js';

/** statfs f_type of nsfs (linux/magic.h NSFS_MAGIC). */
const NSFS_MAGIC = 0x6e736673;

export function netnsPathOf(runDir: string, id: string): string {
  return path.join(runDir, 'netns', id);
}

/** Whether the file is a mounted network namespace (not just the empty mount point left behind). */
export function isNetnsMounted(file: string): boolean {
  try {
    return statfsSync(file).type === NSFS_MAGIC;
  } catch {
    return false;
  }
}

/** Creates the namespace at `file` (idempotent: an existing one is kept). */
export async function createNetns(file: string): Promise<void> {
  if (isNetnsMounted(file)) return;
  await makeDirs([path.dirname(file)]);
  if (!existsNow(file)) closeSync(openSync(file, 'w', 0o600));
  try {
    // Ports below 1024 bindable by any uid in the namespace, as Docker and containerd do for a
    // container's own network namespace: under a user namespace (hostUsers: false) the container's
    // root has no CAP_NET_BIND_SERVICE in this namespace (owned by the node's user namespace), so
    // a server on :80 would fail with EACCES. The namespace holds only the container: nothing else
    // on the node is reachable through these ports. /proc/sys/net is the writer's namespace's.
    await exec('unshare', [`--net=${file}`, '/bin/sh', '-c', 'echo 0 > /proc/sys/net/ipv4/ip_unprivileged_port_start'], { timeoutMs: 30_000 });
  } catch (err) {
    throw new Error(`cannot create the network namespace ${file}`, { cause: err });
  }
}

/** Binds the network namespace of a running process at `file` again (`mount --bind /proc/PID/ns/net`). */
export async function bindNetnsOf(pid: number, file: string): Promise<void> {
  await makeDirs([path.dirname(file)]);
  if (!existsNow(file)) closeSync(openSync(file, 'w', 0o600));
  await exec('mount', ['--bind', `/proc/${pid}/ns/net`, file], { timeoutMs: 30_000 });
}

/** Unmounts and deletes the namespace file (idempotent). */
export async function removeNetns(file: string): Promise<void> {
  if (!existsNow(file)) return;
  await unmountAll(file);
  await removePaths([file]);
}
