/**
 * A container's rootfs layers mounted idmapped into its user namespace's range (the node's `/` for
 * the host template, an imported template's rootfs, an image's layer dirs): the layers stay owned
 * by the node's ids on disk and are shared by every container, whatever its range; nothing is
 * copied or chowned. The container's root sees the files of node root as its own.
 *
 * The mounts are made by native/acetate-idmap (why a C helper: see its header), read-only, at
 * <container run dir>/lower/<n>, just before runc creates the container: one server per acetate
 * process (`--serve`, util/answering-helper.ts) makes each start's mounts as one hold, so that a
 * start spawns no process of its own (a spawn forks all of acetate's Node process: 2-10 ms of its
 * one thread per start, docs/benchmarks.md). runc mounts the overlay over them inside the
 * container's mount namespace as before (overlayfs takes its own private clones of the lower
 * mounts); right after `runc create` the node's copies are detached (releaseIdmappedLayers asks
 * the server to end the hold), so a running container leaves no idmapped mount in the node's mount
 * table. If acetate dies in between, the kernel closes the server's stdin and it detaches every
 * hold it made; if the server itself was killed, the next start/stop/remove's scrub detaches them
 * (`--release`).
 */
import { chown, mkdir, readdir, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { AnsweringHelper } from '../../util/answering-helper.js';
import { messageOf } from '../../contracts/errors.js';
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

/** A hold or a release takes a few ms; a server silent this long is stuck (it is killed). */
const IDMAP_TIMEOUT_MS = 30_000;

/** dist/native/acetate-idmap, built from native/acetate-idmap.c by scripts/build-native.sh. */
export const IDMAP_HELPER = path.join(PACKAGE_ROOT, 'dist', 'native', 'acetate-idmap');

/** Where a container's idmapped layers are mounted: <container run dir>/lower. */
export function idmapDir(containerRunDir: string): string {
  return path.join(containerRunDir, 'lower');
}

/**
 * Mounts each layer idmapped to the namespace's range (or only the ids `only` names) at <dir>/<n> (n in layer order) and returns
 * those paths, in the same order. What an earlier interrupted start left there is released first.
 * `only` applies from layer `onlyFrom` on: the layers before are acetate's own (the host view's
 * markers, host-layer.ts), mapped whole.
 */
export async function mountIdmappedLayers(
  dir: string,
  layers: readonly string[],
  userns: OciUserNamespace,
  helper = IDMAP_HELPER,
  only?: HostIds,
  onlyFrom = 0,
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
  const args = [
    ...(only ? ['--ids', only.uids, only.gids, ...(onlyFrom ? ['--ids-from', String(onlyFrom)] : [])] : []),
    String(m.hostID),
    String(m.size),
    ...layers.flatMap((l, i) => [l, targets[i]!]),
  ];
  const server = serverFor(helper);
  const holdId = String(nextHoldId++);
  try {
    const { word, detail } = await server.request(serverRequest('hold', holdId, ...args), IDMAP_TIMEOUT_MS);
    if (word !== 'ready') throw new IdmapError(`acetate-idmap: ${detail}`);
    // No other hold of this dir: the release above ended any earlier one, and the runtime's
    // per-container lock lets one start of a container run at a time.
    held.set(dir, { server, holdId });
  } catch (err) {
    await releaseIdmappedLayers(dir, helper).catch(() => undefined);
    // The reason in the message too: it is what `apply`, `describe` and the events show.
    throw new IdmapError(`cannot mount the container's layers idmapped to ids ${m.hostID}+${m.size}: ${messageOf(err)}`, { cause: err });
  }
  return targets;
}

/** This process' idmap server, one per helper binary (tests name their own). */
const servers = new Map<string, AnsweringHelper>();
let nextHoldId = 1;

function serverFor(helper: string): AnsweringHelper {
  let server = servers.get(helper);
  if (!server) {
    server = new AnsweringHelper({ program: helper, args: ['--serve'], name: 'the idmap server', error: (m, o) => new IdmapError(m, o) });
    servers.set(helper, server);
  }
  return server;
}

/** A request's fields after its id (acetate-idmap.c: `ID NARGS ARG...`). */
const serverRequest = (...args: string[]): string[] => [String(args.length), ...args];

/** The holds keeping a start's mounts, by idmap dir, until releaseIdmappedLayers. */
const held = new Map<string, { server: AnsweringHelper; holdId: string }>();

/** Asks the server to detach a hold's mounts; false if it could not (it died meanwhile: its mounts stay). */
async function endHold(hold: { server: AnsweringHelper; holdId: string }): Promise<boolean> {
  try {
    return (await hold.server.request(serverRequest('release', hold.holdId), IDMAP_TIMEOUT_MS)).word === 'released';
  } catch {
    return false;
  }
}

/**
 * Detaches every mount at <dir>/<n> (lazily: the overlay of a running container keeps its own
 * clones) and removes the dirs. Never deletes recursively: a layer that were still mounted is the
 * node's `/` or a template; rmdir of it fails instead of reaching into it.
 */
export async function releaseIdmappedLayers(dir: string, helper = IDMAP_HELPER): Promise<void> {
  const hold = held.get(dir);
  held.delete(dir);
  const detached = hold ? await endHold(hold) : false;
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
