/**
 * A container's rootfs layers mounted idmapped into its user namespace's range (the node's `/` for
 * the host template, an imported template's rootfs, an image's layer dirs): the layers stay owned
 * by the node's ids on disk and are shared by every container, whatever its range; nothing is
 * copied or chowned. The container's root sees the files of node root as its own.
 *
 * The mounts are made by native/acetate-idmap (why a C helper: see its header), one process for
 * all the layers, read-only, at <container run dir>/lower/<n>, just before runc creates the
 * container. runc mounts the overlay over them inside the container's mount namespace as before
 * (overlayfs takes its own private clones of the lower mounts); right after `runc create` the
 * node's copies are detached (releaseIdmappedLayers closes the helper's stdin: it detaches them
 * and exits), so a running container leaves no idmapped mount in the node's mount table. If
 * acetate dies in between, the kernel closes that stdin and the helper detaches them just the
 * same; if the helper itself was killed, the next start/stop/remove's scrub detaches them
 * (`--release`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chown, mkdir, readdir, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { exec } from '../../util/exec.js';
import { PACKAGE_ROOT } from '../../util/package-root.js';
import type { OciUserNamespace } from './userns.js';
import type { HostIds } from './host-ids.js';

export class IdmapError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'IdmapError';
  }
}

/** dist/native/acetate-idmap, built from native/acetate-idmap.c by scripts/build-native.sh. */
export const IDMAP_HELPER = path.join(PACKAGE_ROOT, 'dist', 'native', 'acetate-idmap');

/** Where a container's idmapped layers are mounted: <container run dir>/lower. */
export function idmapDir(containerRunDir: string): string {
  return path.join(containerRunDir, 'lower');
}

/**
 * Mounts each layer idmapped to the namespace's range (or only the ids `only` names) at <dir>/<n> (n in layer order) and returns
 * those paths, in the same order. What an earlier interrupted start left there is released first.
 */
export async function mountIdmappedLayers(
  dir: string,
  layers: readonly string[],
  userns: OciUserNamespace,
  helper = IDMAP_HELPER,
  only?: HostIds,
): Promise<string[]> {
  const m = userns.uidMappings[0]!;
  const g = userns.gidMappings[0]!;
  if (userns.uidMappings.length !== 1 || m.containerID !== 0 || userns.gidMappings.length !== 1 || g.hostID !== m.hostID || g.size !== m.size) {
    throw new IdmapError('idmapped layers need one mapping from container id 0, the same for users and groups');
  }
  await releaseIdmappedLayers(dir, helper);
  // Only the range's root (runc mounting the overlay in the container's user namespace) may walk
  // in: through the mounts, node root's files are that uid's until they are detached.
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chown(dir, m.hostID, g.hostID);
  const targets = layers.map((_, i) => path.join(dir, String(i)));
  for (const t of targets) await mkdir(t, { mode: 0o755 });
  // `only`: just these ids of the layers' files are mapped (the host template's `/`, host-ids.ts).
  const args = [...(only ? ['--ids', only.uids, only.gids] : []), String(m.hostID), String(m.size), ...layers.flatMap((l, i) => [l, targets[i]!])];
  try {
    held.set(dir, await holdMounts(helper, args));
  } catch (err) {
    await releaseIdmappedLayers(dir, helper).catch(() => undefined);
    throw new IdmapError(`cannot mount the container's layers idmapped to ids ${m.hostID}+${m.size}`, { cause: err });
  }
  return targets;
}

/** The helpers holding a start's mounts, by idmap dir, until releaseIdmappedLayers. */
const held = new Map<string, ChildProcess>();

/** Runs `helper --hold args` until it says ready (every layer mounted); rejects with its stderr if it exits first. */
function holdMounts(helper: string, args: readonly string[]): Promise<ChildProcess> {
  const child = spawn(helper, ['--hold', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    if (stderr.length < 4096) stderr += d.toString();
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.stdout.once('data', () => resolve(child));
    child.once('exit', (code, signal) => reject(new IdmapError(`acetate-idmap exited (${code ?? signal}): ${stderr.trim().slice(0, 1000)}`)));
  });
}

/** Closes a held helper's stdin (it detaches the mounts) and waits for its exit; false if it failed to. */
async function endHold(child: ChildProcess): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode === 0;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.stdin?.end();
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  try {
    return (await exited) === 0;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Detaches every mount at <dir>/<n> (lazily: the overlay of a running container keeps its own
 * clones) and removes the dirs. Never deletes recursively: a layer that were still mounted is the
 * node's `/` or a template; rmdir of it fails instead of reaching into it.
 */
export async function releaseIdmappedLayers(dir: string, helper = IDMAP_HELPER): Promise<void> {
  const child = held.get(dir);
  held.delete(dir);
  const detached = child ? await endHold(child) : false;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const targets = names.filter((n) => /^\d+$/.test(n)).map((n) => path.join(dir, n));
  if (targets.length && !detached) await exec(helper, ['--release', ...targets], { timeoutMs: 30_000 });
  for (const t of targets) await rmdir(t);
  await rmdir(dir);
}
