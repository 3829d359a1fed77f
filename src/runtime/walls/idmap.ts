/**
 * A container's rootfs layers mounted idmapped into its user namespace's range (the node's `/` for
 * the host template, an imported template's rootfs, an image's layer dirs): the layers stay owned
 * by the node's ids on disk and are shared by every container, whatever its range; nothing is
 * copied or chowned. The container's root sees the files of node root as its own.
 *
 * The mounts are made by native/acetate-idmap (why a C helper: see its header), one call for all
 * the layers, read-only, at <container run dir>/lower/<n>, just before runc creates the container.
 * runc mounts the overlay over them inside the container's mount namespace as before (overlayfs
 * takes its own private clones of the lower mounts); right after `runc create` the node's copies
 * are detached (releaseIdmappedLayers), so a running container leaves no idmapped mount in the
 * node's mount table. A start interrupted between the two leaves them for the next
 * start/stop/remove's scrub, which releases them the same way.
 */
import { mkdir, readdir, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { exec } from '../../util/exec.js';
import type { OciUserNamespace } from './userns.js';

export class IdmapError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'IdmapError';
  }
}

/** dist/native/acetate-idmap, built from native/acetate-idmap.c by scripts/build-native.sh. */
export const IDMAP_HELPER = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'native', 'acetate-idmap');

/** Where a container's idmapped layers are mounted: <container run dir>/lower. */
export function idmapDir(containerRunDir: string): string {
  return path.join(containerRunDir, 'lower');
}

/**
 * Mounts each layer idmapped to the namespace's range at <dir>/<n> (n in layer order) and returns
 * those paths, in the same order. What an earlier interrupted start left there is released first.
 */
export async function mountIdmappedLayers(dir: string, layers: readonly string[], userns: OciUserNamespace, helper = IDMAP_HELPER): Promise<string[]> {
  const m = userns.uidMappings[0]!;
  const g = userns.gidMappings[0]!;
  if (userns.uidMappings.length !== 1 || m.containerID !== 0 || userns.gidMappings.length !== 1 || g.hostID !== m.hostID || g.size !== m.size) {
    throw new IdmapError('idmapped layers need one mapping from container id 0, the same for users and groups');
  }
  await releaseIdmappedLayers(dir, helper);
  await mkdir(dir, { recursive: true, mode: 0o711 });
  const targets = layers.map((_, i) => path.join(dir, String(i)));
  for (const t of targets) await mkdir(t, { mode: 0o755 });
  const args = [String(m.hostID), String(m.size), ...layers.flatMap((l, i) => [l, targets[i]!])];
  try {
    await exec(helper, args, { timeoutMs: 30_000 });
  } catch (err) {
    await releaseIdmappedLayers(dir, helper).catch(() => undefined);
    throw new IdmapError(`cannot mount the container's layers idmapped to ids ${m.hostID}+${m.size}`, { cause: err });
  }
  return targets;
}

/**
 * Detaches every mount at <dir>/<n> (lazily: the overlay of a running container keeps its own
 * clones) and removes the dirs. Never deletes recursively: a layer that were still mounted is the
 * node's `/` or a template; rmdir of it fails instead of reaching into it.
 */
export async function releaseIdmappedLayers(dir: string, helper = IDMAP_HELPER): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const targets = names.filter((n) => /^\d+$/.test(n)).map((n) => path.join(dir, n));
  if (targets.length) await exec(helper, ['--release', ...targets], { timeoutMs: 30_000 });
  for (const t of targets) await rmdir(t);
  await rmdir(dir);
}
