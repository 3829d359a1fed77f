/**
 * Persistent network namespaces: a namespace that outlives the processes in it, held by a bind
 * mount of its nsfs file (what `ip netns add` does under /run/netns). acetate keeps them under its
 * own run dir, `<runDir>/netns/<id>`, so they are the instance's, and a reboot (which empties the
 * run dir's tmpfs) ends them with the processes. Created with util-linux's `unshare`.
 *
 * A user-namespaced container's network namespace is owned by a user namespace of its own range,
 * made with it and held beside it at `<runDir>/userns/<id>`; runc joins both (config.json paths).
 * Why: a namespace is administered from the user namespace that owns it. Owned by the node's (as
 * one made by node root is), the container's root could not mount a sysfs of its network (so /sys
 * was the node's, and no cgroup namespace), and `runc exec` (1.1.5), which joins the container's
 * user namespace first, could not then join the network namespace (setns: EPERM). Podman and
 * rootlesskit make the network namespace inside the user namespace for the same reason.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, statSync, statfsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { exec } from '../../util/exec.js';
import { existsNow, makeDirs, removePaths } from '../../util/small-file.js';
import { unmountAll } from '../../util/mounts.js';
import type { NetworkRequest } from './driver.js';

/** statfs f_type of nsfs (linux/magic.h NSFS_MAGIC). */
const NSFS_MAGIC = 0x6e736673;
const TIMEOUT_MS = 30_000;

/** The ids of the user namespace that owns a container's network namespace: its range. */
export type NetnsOwner = NonNullable<NetworkRequest['owner']>;

/** How network.json records the owner, compared at the next start. */
export function ownerText(owner: NetnsOwner | undefined): string | undefined {
  return owner ? `${owner.hostID}+${owner.size}` : undefined;
}

/** ownerText read back (undefined: the node's, or not ours to read). */
export function ownerOfText(text: string | undefined): NetnsOwner | undefined {
  const m = /^(\d+)\+(\d+)$/.exec(text ?? '');
  return m ? { hostID: Number(m[1]), size: Number(m[2]) } : undefined;
}

export function netnsPathOf(runDir: string, id: string): string {
  return path.join(runDir, 'netns', id);
}

/** The owning user namespace's file of a network namespace file: `<runDir>/userns/<id>`. */
export function ownerFileOf(netnsFile: string): string {
  return path.join(path.dirname(path.dirname(netnsFile)), 'userns', path.basename(netnsFile));
}

/** Whether the file is a mounted namespace (not just the empty mount point left behind). */
export function isNsMounted(file: string): boolean {
  try {
    return statfsSync(file).type === NSFS_MAGIC;
  } catch {
    return false;
  }
}

// Ports below 1024 bindable by any uid in the namespace, as Docker and containerd do for a
// container's own network namespace: a server on :80 run by a non-root user of the container
// works as it would on a machine of its own. The namespace holds only the container: nothing else
// on the node is reachable through these ports. /proc/sys/net is the writer's namespace's.
const UNPRIVILEGED_PORTS = 'echo 0 > /proc/sys/net/ipv4/ip_unprivileged_port_start';

/**
 * Creates the namespace at `file` (idempotent: an existing one is kept), owned by a new user
 * namespace mapping `owner`'s range when given (held at ownerFileOf(file)). A pair whose owner
 * file is gone is made again, unless `keep`. Callers that change the owner remove the old pair
 * first (cni-attachments.ts begin): an existing pair's mapping is not checked here.
 */
export async function createNetns(file: string, owner?: NetnsOwner, opts: { keep?: boolean } = {}): Promise<void> {
  const ownerFile = ownerFileOf(file);
  // `keep`: a running process is in it (a repair in place): never replaced here, whatever its owner.
  if (isNsMounted(file) && (opts.keep || !owner || isNsMounted(ownerFile))) return;
  await removeNetns(file); // a half-made pair of an interrupted create
  await makeDirs([path.dirname(file), ...(owner ? [path.dirname(ownerFile)] : [])]);
  for (const f of owner ? [file, ownerFile] : [file]) if (!existsNow(f)) closeSync(openSync(f, 'w', 0o600));
  try {
    if (owner) await createOwned(file, ownerFile, owner);
    else await exec('unshare', [`--net=${file}`, '/bin/sh', '-c', UNPRIVILEGED_PORTS], { timeoutMs: TIMEOUT_MS });
  } catch (err) {
    await removeNetns(file).catch(() => undefined);
    throw new Error(`cannot create the network namespace ${file}${owner ? ` owned by ids ${ownerText(owner)}` : ''}`, { cause: err });
  }
}

/**
 * One `unshare --user --net` (a single unshare(2): the new network namespace is the new user
 * namespace's), its id maps written by node root, both namespaces bound at their files. Not
 * `unshare --user=FILE --map-users=…`: util-linux 2.38 writes the maps through newuidmap (not
 * installed, and checking /etc/subuid) and its bind of the user namespace fails here (EPERM).
 */
async function createOwned(file: string, ownerFile: string, owner: NetnsOwner): Promise<void> {
  // The port setting first (node root's uid, all capabilities in the new user namespace, which owns
  // the new network namespace), so a pair is never bound without it; then it waits for its maps
  // and binds, and ends when told (or at the end of its input, should acetate die).
  const child = spawn('unshare', ['--user', '--net', '/bin/sh', '-c', `${UNPRIVILEGED_PORTS} && echo ready && read -r _`], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stdin.on('error', () => undefined); // EPIPE once it has ended: seen as its exit
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  const exited = new Promise<string>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve(signal ?? String(code)));
  });
  exited.catch(() => undefined);
  const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
  try {
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('ready\n')) resolve();
      });
      exited.then((end) => reject(new Error(`unshare ended (${end}) before its namespaces were made: ${stderr.trim()}`)), reject);
    });
    const pid = child.pid!;
    const map = `0 ${owner.hostID} ${owner.size}\n`;
    await writeFile(`/proc/${pid}/uid_map`, map);
    await writeFile(`/proc/${pid}/gid_map`, map);
    await exec('mount', ['--bind', `/proc/${pid}/ns/user`, ownerFile], { timeoutMs: TIMEOUT_MS });
    await exec('mount', ['--bind', `/proc/${pid}/ns/net`, file], { timeoutMs: TIMEOUT_MS });
    // Still waiting for its word, so the pid was its own all along (not reused by another process
    // after a kill at the timeout): the files hold its namespaces.
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`unshare ended (${child.signalCode ?? child.exitCode}) while its namespaces were bound`);
    child.stdin.end('\n');
    const end = await exited;
    if (end !== '0') throw new Error(`the namespace's shell failed (${end}): ${stderr.trim()}`);
  } finally {
    clearTimeout(timer);
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}

/**
 * Binds the namespaces of a running process at `file` (and its owner's) again (`mount --bind
 * /proc/PID/ns/…`) where they are not bound, or bound to another namespace (a failed repair's
 * new one): the running process's are the container's.
 */
export async function bindNetnsOf(pid: number, file: string, owned: boolean): Promise<void> {
  const binds: [string, string][] = [[`/proc/${pid}/ns/net`, file]];
  if (owned) binds.push([`/proc/${pid}/ns/user`, ownerFileOf(file)]);
  for (const [from, to] of binds) {
    if (isNsMounted(to)) {
      const its = nsIdentity(from);
      if (its !== undefined && its === nsIdentity(to)) continue;
      await unmountAll(to);
    }
    await makeDirs([path.dirname(to)]);
    if (!existsNow(to)) closeSync(openSync(to, 'w', 0o600));
    await exec('mount', ['--bind', from, to], { timeoutMs: TIMEOUT_MS });
  }
}

/**
 * Whether a process may enter its network namespace from its user namespace (what `runc exec`
 * does): it has none of its own (the caller's), or it is the one held as the owner of `netnsFile`.
 * A process in a user namespace whose network namespace an older acetate made (node-owned) may not.
 */
export function entersOwnNetns(pid: number, netnsFile: string): boolean {
  const its = nsIdentity(`/proc/${pid}/ns/user`);
  return its !== undefined && (its === nsIdentity('/proc/self/ns/user') || its === nsIdentity(ownerFileOf(netnsFile)));
}

/** Which namespace a nsfs file (a /proc/PID/ns link, or a bound file) is: its device and inode. */
function nsIdentity(file: string): string | undefined {
  try {
    const st = statSync(file);
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}

/** Unmounts and deletes the namespace file and its owner's (idempotent). */
export async function removeNetns(file: string): Promise<void> {
  for (const f of [file, ownerFileOf(file)]) {
    if (!existsNow(f)) continue;
    await unmountAll(f);
    await removePaths([f]);
  }
}
