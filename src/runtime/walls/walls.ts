/**
 * The walls of a container, the one call the runtime makes for them (../runc/runc-context.ts and
 * config-input.ts): what the host template shows (host-masks.ts, carried out by host-view.ts), the /proc and /sys masks
 * (masks.ts), the capabilities (capabilities.ts), the seccomp filter (seccomp.ts) and the user
 * namespace (userns.ts), with the private area and template prepared for the ids the container runs
 * with. hostpath-guard.ts and mount-checks.ts check the mounts a spec asks for. This folder knows
 * nothing of runc: it returns the parts of the OCI config, and runc/oci-config.ts puts them together.
 */
import path from 'node:path';
import type { AppliedRecord } from '../runtime.js';
import { HOST_TEMPLATE, HOST_TMPFS, type HostView, type HostViewOptions } from './host-masks.js';
import { applyHostView, currentHostView, nodePlaced, type ApplyTarget } from './host-view.js';
import { layerFor, layersDirOf, type HostLayer } from './host-layer.js';
import { hasReserve, isNoRoom, withReserve } from '../disk/room-reserve.js';
import { messageOf } from '../../contracts/errors.js';
import { resolveCapabilities } from './capabilities.js';
import type { OciMount } from './oci-mount.js';
import { seccompFor, type OciSeccomp } from './seccomp.js';
import { ensureTraversable, preparePrivateArea, userNamespaceFor, type OciUserNamespace } from './userns.js';
import { DEFAULT_USERNS_POOL, lowestFreeRange, type IdRange } from './id-pool.js';
import { NODE_ID_CLAIMS } from './id-claims.js';
import { checkRangeHeld, claimRangeForStart } from './id-range-held.js';
import { assignIdRange, importIdRecords, readIds, recordedRange, type IdRangeStore } from './id-ranges.js';
import { DEFAULT_ID_RECORDS } from './id-records.js';
import { idmapDir, mountIdmappedLayers } from './idmap.js';
import { hostOsIds } from './host-ids.js';
import { HostViewWatch } from './host-view-watch.js';
import { EMPTY_DIR_NAME, emptyDirMounts, ensureEmptyDir, maskableByEmptyDir } from './empty-dir-masks.js';

/** The node's dirs a container must not see (runc/paths.ts InstancePaths has them). */
export interface WallPaths {
  stateDir: string;
  runDir: string;
  /** <stateDir>/containers: where the id ranges in use are recorded (id-ranges.ts). */
  containersDir: string;
}

/** A container's own dirs (runc/paths.ts ContainerPaths has them). */
export interface WallContainerPaths {
  dir: string;
  /** <runDir>/containers/<id>: the idmapped layers are mounted under it (see idmap.ts). */
  runDir: string;
  upper: string;
  work: string;
  rootfs: string;
}

/** The parts of the OCI config the walls give (fields of runc/oci-config.ts OciConfigInput). */
export interface WallInputs {
  lower: string | string[];
  isolationMounts?: OciMount[];
  /** Masked dirs bound to one empty dir instead of a tmpfs each (empty-dir-masks.ts). */
  maskMounts?: OciMount[];
  seccomp?: OciSeccomp;
  userNamespace?: OciUserNamespace;
}

export interface IsolationSettings {
  /** More paths the host template hides on this node (ACETATE_HOST_HIDE). */
  hostHide?: string[];
  /** Default hidden paths shown on this node after all (ACETATE_HOST_SHOW). */
  hostShow?: string[];
  /** More node ids the host template's `/` maps into a user namespace (ACETATE_HOST_IDS; see host-ids.ts). */
  hostIds?: number[];
  /** The node's pool of ids for containers' ranges (--userns-pool, ACETATE_USERNS_POOL; see id-pool.ts). */
  usernsPool?: IdRange;
  /** The node's record of the ranges held, shared by every instance (ACETATE_ID_RECORDS; see id-records.ts). */
  idRecords?: string;
  /** The node-wide dir of the host template's node facts (ACETATE_NODE_FACTS; see node-facts.ts). */
  nodeFacts?: string;
  /** What an absent hostUsers means on this node (--host-users, ACETATE_HOST_USERS): default false, a user namespace. */
  hostUsersDefault?: boolean;
  /** The RuntimeDefault seccomp profile file (default: Debian's containers-common one). */
  seccompProfile?: string;
}

export interface IsolationContext {
  paths: WallPaths;
  settings: IsolationSettings;
  hostRoot: string;
  boundingCapabilities: readonly string[];
}

export function hostIsolationOptions(ctx: Pick<IsolationContext, 'paths' | 'settings'>): Omit<HostViewOptions, 'packageOwned'> {
  return { stateDir: ctx.paths.stateDir, runDir: ctx.paths.runDir, hide: ctx.settings.hostHide, show: ctx.settings.hostShow };
}

/** The host template's view of this node (what `template describe host` prints, what a start writes). */
export function hostViewOf(ctx: Pick<IsolationContext, 'paths' | 'settings' | 'hostRoot'>): Promise<HostView> {
  return currentHostView(ctx.hostRoot, hostIsolationOptions(ctx), ctx.paths.stateDir, ctx.settings.nodeFacts);
}

/**
 * While `acetate run` runs: what the node makes in its data places is hidden in running
 * host-template containers too, not only at their next start (host-view-watch.ts).
 */
export function watchHostView(
  ctx: Pick<IsolationContext, 'paths' | 'settings' | 'hostRoot'>,
  onError: (err: unknown) => void,
  /** Runs `fn` with container `id` frozen (nothing of it writes on its disk meanwhile). */
  frozen?: <T>(id: string, fn: () => Promise<T>) => Promise<T>,
  /** A container (its dir's name) whose markers could not all be placed, why; undefined once they are. */
  onContainer?: (id: string, problem: string | undefined) => void,
): HostViewWatch {
  const w = new HostViewWatch({
    hostRoot: ctx.hostRoot,
    stateDir: ctx.paths.stateDir,
    containersDir: ctx.paths.containersDir,
    layersDir: layersDirOf(ctx.paths.runDir, ctx.paths.stateDir),
    view: () => hostViewOf(ctx),
    onError,
    ...(onContainer ? { onContainer } : {}),
    // Only a disk image has a reserve (no disk limit: the state dir's filesystem is the node's).
    ...(frozen
      ? { withRoom: (id: string, upper: string, write: () => Promise<number>) => (hasReserve(upper) ? frozen(id, () => withReserve(upper, write)) : write()) }
      : {}),
  });
  w.start();
  return w;
}

/**
 * The host template's mounts: only the private /run (a tmpfs, as on any machine: emptied at each
 * start). Everything else it hides is marked in the private area (host-view.ts), not mounted.
 */
export function hostTemplateMounts(view: { tmpfs: readonly { path: string }[] }): OciMount[] {
  return view.tmpfs.map((t) => ({ destination: t.path, type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=755'] }));
}

export function idRangeStore(paths: WallPaths, settings: IsolationSettings): IdRangeStore {
  return {
    containersDir: paths.containersDir,
    recordsFile: settings.idRecords ?? DEFAULT_ID_RECORDS,
    pool: settings.usernsPool ?? DEFAULT_USERNS_POOL,
    claims: NODE_ID_CLAIMS,
    runContainersDir: path.join(paths.runDir, 'containers'),
  };
}

/**
 * At a create: the ids the container will run with, recorded with it (id-ranges.ts): its own range
 * for hostUsers: false (kept across a replace while it is in the pool; `preferred`: the one plan
 * announced), none for the node's ids.
 */
export function assignContainerIds(
  ctx: Pick<IsolationContext, 'paths' | 'settings'>,
  dir: string,
  spec: Pick<AppliedRecord['spec'], 'security'>,
  preferred?: IdRange,
): Promise<IdRange | undefined> {
  return assignIdRange(idRangeStore(ctx.paths, ctx.settings), dir, spec.security.hostUsers === false, preferred);
}

/**
 * The OciConfigInput fields of isolation, for a template whose lower dir is `lower`. With
 * `prepare` (a start, not a check), the private area is re-owned for the ids in use and, with a
 * user namespace, the layers are mounted idmapped to its range (idmap.ts): the returned `lower`
 * is then those mounts, which the caller releases once runc has created the container.
 */
export async function isolationInputs(
  record: Pick<AppliedRecord, 'spec'>,
  cp: WallContainerPaths,
  lower: string | string[],
  ctx: IsolationContext,
  opts: { prepare: boolean },
): Promise<WallInputs> {
  const { spec } = record;
  const unprivileged = spec.security.hostUsers === false;
  // The range recorded at the create, as it is: a change of pool is a planned replace, never a
  // switch at the next start. None recorded (created before ranges were per container, or a
  // check before the create): one is assigned at the start; a check builds with any range.
  let range: IdRange | undefined;
  const store = idRangeStore(ctx.paths, ctx.settings);
  if (unprivileged) {
    range = recordedRange(await readIds(cp.dir));
    if (range && opts.prepare) {
      // Before the import (which records what the ids.json files say): another live owner's range is refused.
      await checkRangeHeld(store, cp.dir, range);
      await importIdRecords(store); // an instance's first start: its ranges into the node's records and claims
      await claimRangeForStart(store, cp.dir, range);
    }
    if (!range) range = opts.prepare ? await assignIdRange(store, cp.dir, true) : lowestFreeRange(store.pool, []);
  }
  const userNamespace = range ? userNamespaceFor(false, range) : undefined;
  const caps = resolveCapabilities(spec.security).filter((c) => ctx.boundingCapabilities.includes(c));
  const seccomp = seccompFor(spec.security.seccompProfile, {
    capabilities: caps,
    privileged: spec.security.privileged,
    defaultProfile: ctx.settings.seccompProfile,
  });
  const host = spec.template === HOST_TEMPLATE;
  const isolation = host ? hostTemplateMounts({ tmpfs: HOST_TMPFS }) : undefined;
  const maskMounts = spec.security.privileged || !sharedMaskSafe(caps, !!userNamespace) ? undefined : emptyDirMasks(ctx.paths.stateDir, opts.prepare);
  let lowerDir = lower;
  if (!opts.prepare) return wallInputs(lowerDir, isolation, maskMounts, seccomp, userNamespace);
  // The host view's markers: a layer shared by the node's host-template containers, over its `/`
  // (host-layer.ts); held from here to the start's end, when the container's record names it.
  const idBase = userNamespace ? userNamespace.uidMappings[0]!.hostID : 0;
  const view = host ? await hostViewOf(ctx) : undefined;
  const target = hostTarget(ctx, cp, idBase);
  const chosen = view ? await layerFor(view, await nodePlaced(view, target), target, layersDirOf(ctx.paths.runDir, ctx.paths.stateDir)) : undefined;
  try {
    const layers = [...(chosen ? [chosen.layer.dir] : []), ...(typeof lower === 'string' ? [lower] : lower)];
    if (!userNamespace && chosen) lowerDir = layers;
    let mounting: Promise<string[]> | undefined;
    if (userNamespace) {
      const own = [ctx.paths.stateDir, ctx.paths.runDir];
      const dir = idmapDir(cp.runDir);
      await ensureTraversable(dir, own); // the overlay is mounted by the range's root, through dir
      await ensureTraversable(cp.dir, own); // the container dir itself: see preparePrivateArea
      // With resources.disk the upper dir sits on the disk image's root (disk/), made 0700 root
      // like the container dir was at the image's creation: the range root must cross it too.
      await ensureTraversable(cp.upper, own);
      // The host template's `/`: only the ids of the OS' files (host-ids.ts): the node's data of
      // other owners stays closed to the container's root even before a marker hides it.
      const only = host ? await hostOsIds(ctx.hostRoot, ctx.settings.hostIds) : undefined;
      // The helper mounts in its own process while the private area and the markers are made
      // here (neither touches the layers): ~3 ms of each start off its critical path.
      // The layer (acetate's own files, no node data) mapped whole: a hidden service dir shown
      // empty stays its owner's in the container (host-layer.ts).
      mounting = mountIdmappedLayers(dir, layers, userNamespace, undefined, only, chosen ? 1 : 0);
      mounting.catch(() => undefined); // awaited below, on success and on failure alike
    }
    try {
      await preparePrivateArea({ dir: cp.dir, upper: cp.upper, work: cp.work, rootfs: cp.rootfs }, userNamespace, store.claims);
      if (view) {
        await placeHostView(view, target, chosen?.layer);
        // Node data made while this start ran (after its view was read, before its record named
        // where its markers go) is in neither its layer nor a pass of the watcher, which skips a
        // container without that record (a hostile round read such a dir from inside): the view is
        // read again now that the record is written; a later change is the watcher's.
        const now = await hostViewOf(ctx);
        if (now !== view) await placeHostView(now, target, chosen?.layer);
      }
    } catch (err) {
      // Settled before the caller releases what it mounted (start.ts): a helper still mounting
      // would not be known yet, and would hold its mounts for the life of this process.
      await mounting?.catch(() => undefined);
      throw err;
    }
    if (mounting) {
      const mapped = await mounting;
      lowerDir = typeof lower === 'string' && !chosen ? mapped[0]! : mapped;
    }
  } finally {
    chosen?.release();
  }
  return wallInputs(lowerDir, isolation, maskMounts, seccomp, userNamespace);
}

function wallInputs(
  lower: string | string[],
  isolation: OciMount[] | undefined,
  maskMounts: OciMount[] | undefined,
  seccomp: OciSeccomp | undefined,
  userNamespace: OciUserNamespace | undefined,
): WallInputs {
  return {
    lower,
    ...(isolation ? { isolationMounts: isolation } : {}),
    ...(maskMounts?.length ? { maskMounts } : {}),
    ...(seccomp ? { seccomp } : {}),
    ...(userNamespace ? { userNamespace } : {}),
  };
}

const hostTarget = (ctx: IsolationContext, cp: WallContainerPaths, idBase: number): ApplyTarget => ({
  hostRoot: ctx.hostRoot,
  stateDir: ctx.paths.stateDir,
  containerDir: cp.dir,
  upper: cp.upper,
  idBase,
});

/**
 * Whether the shared empty dir may be bound into this container. Its read-only flag is the
 * container's own mount's: with CAP_SYS_ADMIN a container may remount it writable, and a root that
 * is the node's (no user namespace; CAP_DAC_OVERRIDE by default) could then write into every
 * container's mask. In a user namespace the dir's owner is not mapped, so nothing writes to it
 * whatever its caps. CAP_DAC_READ_SEARCH with the node's ids opens files by handle on a mount of
 * the node's file systems (open_by_handle_at): none is given to such a container for this either.
 */
function sharedMaskSafe(caps: readonly string[], userNamespace: boolean): boolean {
  return userNamespace || !caps.some((c) => c === 'CAP_SYS_ADMIN' || c === 'CAP_DAC_READ_SEARCH');
}

/** The bind mounts that mask this node's masked dirs outside /proc; at a start the empty dir is made (or found unfit: runc's masks then). */
function emptyDirMasks(stateDir: string, prepare: boolean): OciMount[] | undefined {
  const paths = maskableByEmptyDir();
  if (!paths.length) return undefined;
  const source = prepare ? ensureEmptyDir(stateDir) : path.join(stateDir, EMPTY_DIR_NAME);
  return source ? emptyDirMounts(source, paths) : undefined;
}

/** The host view's markers the layer lacks, and the machine id, in the private area (after preparePrivateArea owned it). */
async function placeHostView(view: HostView, t: ApplyTarget, layer: HostLayer | undefined): Promise<void> {
  const apply = () => applyHostView(view, t, { recheck: true, ...(layer ? { layer } : {}) });
  // A disk the container filled: with acetate's room on it (nothing runs yet to take it first).
  await apply()
    .catch((err: unknown) => {
      if (!isNoRoom(err)) throw err;
      return withReserve(t.upper, apply);
    })
    .catch((err: unknown) => {
      if (!isNoRoom(err)) throw err;
      // Started, it would show node data made since: refused, and said how to end it.
      throw new Error(
        `its disk is full, and acetate's room on it is used up: its machine id or the host view's markers cannot be written (${messageOf(err)}); not started: grow resources.disk (the reserve is filled again from the new room at the next start)`,
        { cause: err },
      );
    });
}
