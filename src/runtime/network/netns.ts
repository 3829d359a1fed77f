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
import { unmountAll } from '../runc/mounts.js';

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
    await exec('unshare', [`--net=${file}`, 'true'], { timeoutMs: 30_000 });
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
