/**
 * The host view's markers every host-template container of the node shares (all but its machine
 * id: host-masks.ts' whiteouts, opaque empty dirs, locked copies), as one read-only lower layer
 * above the node's `/`: overlayfs honours whiteouts and opaque dirs in any lower layer. Made once
 * per view at <runDir>/host-layers-<instance>/layer-<hash>, owned by the node's ids (a user-namespaced
 * container gets it mounted idmapped to its range, whole: idmap.ts), and never written once made.
 *
 * That dir (layersDirOf) is a small tmpfs of its own, mounted at the first host-template start and
 * detached when the instance's last container is removed (releaseLayersMount): overlayfs refuses
 * a lower layer inside another one (ELOOP, "overlapping lowerdir path"), and the state and run
 * dirs are usually on the node's `/`. A layer is made again after a reboot, as runc's state is.
 * A container's upper dir holds only its own machine id and what the node hid after the container
 * started (host-view.ts, host-view-watch.ts).
 *
 * Why a layer and not a copy in each upper dir (as until Dec 2026): the copy of the ~100 markers
 * cost each create ~7-11 ms of CPU (`cp`, most of it ext4 allocating inodes) plus 75 lchown to the
 * container's range, ~100 inodes of its disk, and a tenant's root that escaped could delete its
 * copy's markers until the next start put them back (range-breakout.test.ts). The layer is one
 * copy for the node, on acetate's own 0700 tmpfs, which no container's ids can write.
 *
 * A layer in use must never be removed: its markers are what hides the node's data from running
 * containers. One acetate process at a time changes a state dir's containers (node-lock.ts); in it,
 * a layer chosen by a start counts as in use until the start ends (`release`), by which time the
 * container's host-view-target.json names it. Layers removed (pruneLayers, after a new one is made)
 * are those that are neither current, in use by a start, nor named by any container's record.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, statSync } from 'node:fs';
import { chmod, chown, lstat, mkdir, opendir, readdir, rename, rm, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { exec } from '../../util/exec.js';
import { readJsonUncached, writeJsonAtomic } from '../../util/json-file.js';
import { pidExists } from '../../util/processes.js';
import { isMounted, unmountAll } from '../../util/mounts.js';
import type { HostView, ViewEntry } from './host-masks.js';
import { ensureParents, nodeEntry, OPAQUE_XATTRS, place, sha, type ApplyTarget, type Placed } from './host-markers.js';

/** Where a container's start records its layer: <containerDir>/host-view-target.json (host-view.ts). */
export const TARGET_FILE = 'host-view-target.json';

export interface TargetRecord {
  upper: string;
  idBase: number;
  /** The layer it last started with (a name in layersDirOf); none: a container started before layers. */
  layer?: string;
}

export interface HostLayer {
  /** layer-<hash> */
  name: string;
  dir: string;
  /** What the layer holds, by path: what placing each wrote (host-markers.ts). */
  placed: ReadonlyMap<string, Placed>;
}

const NAME = /^layer-[0-9a-f]{16}$/;
/** The start of the layers dir's name: <runDir>/host-layers-<hash of the state dir's identity>. */
export const LAYERS_DIR_PREFIX = 'host-layers-';
/**
 * Where an instance's layers are. Its own per state dir: two instances given one run dir (allowed,
 * and only serialized by the node lock) would otherwise prune each other's layers, which only
 * their own containers' records name, and detach each other's tmpfs (a hostile round made a
 * running container read node data so). Named by the state dir's device and inode, not its path:
 * a state dir renamed while its containers run, and a new one made at its path, get two (a second
 * round listed hidden names so).
 */
export function layersDirOf(runDir: string, stateDir: string): string {
  const st = statSync(stateDir, { throwIfNoEntry: false });
  const identity = st ? `${st.dev}:${st.ino}` : path.resolve(stateDir);
  return path.join(runDir, `${LAYERS_DIR_PREFIX}${sha(identity).slice(0, 12)}`);
}

/** Starts between choosing a layer and their end, by layer dir. */
const inUse = new Map<string, number>();
/** This process' layer of each view (by the hash of what the view places), made or found once. */
const byView = new Map<string, Promise<HostLayer>>();
/** Read layers: never changed once made. */
const known = new Map<string, HostLayer>();

/**
 * Builds and prunes, one at a time: a prune's check that no start holds a layer and its removal
 * are never split by a build that finds that very layer made and takes it.
 */
let queue: Promise<unknown> = Promise.resolve();
function serially<T>(fn: () => Promise<T>): Promise<T> {
  const next = queue.then(fn, fn);
  queue = next.catch(() => undefined);
  return next;
}

/**
 * The layer of this view (`placed`: what the view places for every container, by path), made if
 * missing; counted in use until `release` is called (the start's end).
 */
export async function layerFor(
  view: HostView,
  placed: ReadonlyMap<string, Placed>,
  t: ApplyTarget,
  base: string,
  again = false,
): Promise<{ layer: HostLayer; release: () => void }> {
  const entries = view.entries.filter((e) => e.action.kind !== 'machine-id' && placed.has(e.path));
  const key = sha(JSON.stringify([base, t.hostRoot, entries.map((e) => [e.path, placed.get(e.path)])]));
  let made = byView.get(key);
  if (!made) {
    // Concurrent first starts of one view wait for one build; a failed build is tried again by the next start.
    made = serially(() => buildLayer(entries, t, base));
    byView.set(key, made);
    made.catch(() => byView.get(key) === made && byView.delete(key));
  }
  const layer = await made;
  // Held at once (no await between the check and the count: a prune runs between awaits).
  const held = known.has(layer.dir);
  if (held) inUse.set(layer.dir, (inUse.get(layer.dir) ?? 0) + 1);
  let released = !held;
  const release = () => {
    if (released) return;
    released = true;
    const n = (inUse.get(layer.dir) ?? 1) - 1;
    if (n > 0) inUse.set(layer.dir, n);
    else inUse.delete(layer.dir);
  };
  // Pruned meanwhile (no container named it and no start held it), or its tmpfs gone (detached by
  // hand, a reboot under a test): made again, once.
  if (!held || !(await lstat(layer.dir).catch(() => undefined))) {
    release();
    known.delete(layer.dir);
    if (byView.get(key) === made) byView.delete(key);
    if (again) throw new Error(`the host view's layer ${layer.dir} is gone as soon as made`);
    return layerFor(view, placed, t, base, true);
  }
  return { layer, release };
}

/** A made layer by name (a container's record names it), or undefined if there is none by that name. */
export async function readLayer(base: string, name: string): Promise<HostLayer | undefined> {
  if (!NAME.test(name)) return undefined;
  const dir = path.join(base, name);
  const had = known.get(dir);
  if (had) return had;
  // The record is written before the dir is renamed into place, and removed after it (pruneLayers).
  const rec = await readJsonUncached<Record<string, Placed>>(`${dir}.json`).catch(() => undefined);
  if (!rec || typeof rec !== 'object' || Array.isArray(rec) || !(await lstat(dir).catch(() => undefined))?.isDirectory()) return undefined;
  const layer: HostLayer = { name, dir, placed: new Map(Object.entries(rec)) };
  known.set(dir, layer);
  return layer;
}

/**
 * Builds the view's markers in a dir of their own and names it by what was placed (the hash of its
 * record): a layer of that name already there (another process' build of the same view) is used,
 * never replaced or removed under a container that may have it mounted.
 */
async function buildLayer(entries: ViewEntry[], t: ApplyTarget, base: string): Promise<HostLayer> {
  await ensureLayersMount(base);
  const tmp = path.join(base, `.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(tmp, { mode: 0o755 });
  const placed: Record<string, Placed> = {};
  let dir: string;
  try {
    // The node's ids (idBase 0); built in acetate's own dir, which no container reaches: paths are
    // used as they are, apart from place(), which takes an opened dir (upper-beneath.ts).
    const target: ApplyTarget = { ...t, upper: tmp, idBase: 0 };
    const whiteouts: string[] = [];
    const opaque: string[] = [];
    for (const e of entries) {
      const parent = await ensureParents(e.path, target);
      if (!parent) continue;
      const at = path.join(tmp, e.path);
      const node = await nodeEntry(t.hostRoot, e.path);
      try {
        if (e.action.kind === 'absent') {
          whiteouts.push(at);
          placed[e.path] = { kind: 'absent' };
          continue;
        }
        if (e.action.kind !== 'empty') {
          const p = await place(e, target, parent);
          if (p) placed[e.path] = p;
          continue;
        }
      } finally {
        closeSync(parent.fd);
      }
      await mkdir(at);
      await chown(at, node?.uid ?? 0, node?.gid ?? 0);
      await chmod(at, node?.isDirectory() ? node.mode & 0o7777 : 0o755);
      opaque.push(at);
      placed[e.path] = { kind: 'empty' };
    }
    // One process for every whiteout (Node has no mknod), one per xattr name for the opaque dirs.
    if (whiteouts.length) await exec('sh', ['-c', 'for p in "$@"; do mknod -- "$p" c 0 0 || exit 1; done', 'sh', ...whiteouts]);
    for (const n of OPAQUE_XATTRS) if (opaque.length) await exec('setfattr', ['-h', '-n', n, '-v', 'y', '--', ...opaque]);
    dir = path.join(base, `layer-${sha(JSON.stringify([t.hostRoot, Object.entries(placed)])).slice(0, 16)}`);
    await writeJsonAtomic(`${dir}.json`, placed);
    const moved = await rename(tmp, dir).then(
      () => true,
      (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOTEMPTY' || err.code === 'EEXIST') return false;
        throw err;
      },
    );
    if (!moved) await rm(tmp, { recursive: true, force: true });
  } catch (err) {
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw new Error(`cannot make the host template's markers in ${base}`, { cause: err });
  }
  const layer: HostLayer = { name: path.basename(dir), dir, placed: new Map(Object.entries(placed)) };
  known.set(dir, layer);
  await pruneUnused(base, path.join(t.stateDir, 'containers'), dir).catch(() => undefined);
  await sweepCopiesOfOld(path.join(t.stateDir, 'host-view')).catch(() => undefined);
  return layer;
}

/**
 * What acetate before the layers kept in <stateDir>/host-view: the marker trees each container's
 * upper dir was copied from, their stocks of copies, and copies being made or claimed (of dead
 * processes). Never mounted (copy sources only): removed. The node facts kept there stay.
 */
async function sweepCopiesOfOld(dir: string): Promise<void> {
  for (const n of await readdir(dir).catch(() => [] as string[])) {
    const pid = Number(/^\.(?:claim|tmp)-(\d+)-[0-9a-f]+$/.exec(n)?.[1]);
    if (/^tree-[0-9a-f]{16}(?:\.stock)?$/.test(n) || (pid && pid !== process.pid && !pidExists(pid)))
      await rm(path.join(dir, n), { recursive: true, force: true });
  }
}

/**
 * Removes the layers no container can be using (see the header) and what earlier versions and
 * dead processes left: unfinished builds.
 */
export function pruneLayers(base: string, containersDir: string, current: string): Promise<void> {
  return serially(() => pruneUnused(base, containersDir, current));
}

async function pruneUnused(base: string, containersDir: string, current: string): Promise<void> {
  const names = await readdir(base);
  const named = await layersNamedByContainers(containersDir);
  for (const n of names) {
    const at = path.join(base, n);
    const tmp = /^\.tmp-(\d+)-[0-9a-f]+$/.exec(n);
    const layer = /^(layer-[0-9a-f]{16})$/.exec(n)?.[1];
    let gone = false;
    if (tmp) gone = Number(tmp[1]) !== process.pid && !pidExists(Number(tmp[1]));
    else if (layer) {
      const dir = path.join(base, layer);
      gone = dir !== current && !inUse.has(dir) && !named.has(layer);
      if (gone) known.delete(dir);
    }
    // Renamed first: a start that looks the layer up by name meanwhile finds none (and builds it), never a half-removed one.
    const trash = path.join(base, `.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
    if (gone)
      await rename(at, trash).then(
        () => rm(trash, { recursive: true, force: true }),
        () => undefined,
      );
  }
  // A layer's record goes after its dir (readLayer wants both): the names above are in any order.
  for (const n of names) {
    const layer = /^(layer-[0-9a-f]{16})\.json$/.exec(n)?.[1];
    if (layer && !known.has(path.join(base, layer)) && !(await lstat(path.join(base, layer)).catch(() => undefined)))
      await rm(path.join(base, n), { force: true }).catch(() => undefined);
  }
}

/** The layers containers' records name; throws (nothing is pruned) if a record cannot be read. */
async function layersNamedByContainers(containersDir: string): Promise<Set<string>> {
  const named = new Set<string>();
  const absent = (err: unknown) => {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  };
  for (const id of (await readdir(containersDir).catch(absent)) ?? []) {
    const t = await readJsonUncached<TargetRecord>(path.join(containersDir, id, TARGET_FILE)).catch(absent);
    if (t !== undefined && (typeof t !== 'object' || t === null)) throw new Error(`${id}: ${TARGET_FILE} is not a record`);
    if (typeof t?.layer === 'string') named.add(t.layer);
  }
  return named;
}

/** The layers dir as a tmpfs of its own (see the header), mounted if it is not yet. */
async function ensureLayersMount(base: string): Promise<void> {
  if (await isMounted(base)) return;
  await mkdir(base, { recursive: true, mode: 0o700 });
  // Markers only: a few hundred small entries per view.
  await exec('mount', ['-t', 'tmpfs', '-o', 'mode=0700,size=16m,nr_inodes=65536', 'acetate-host-layers', base]);
}

/**
 * Once the instance has no container left (`containersDir` empty) and no start holds a layer: the
 * tmpfs is detached and its dir removed, so a node without containers keeps no mount of acetate's.
 */
export function releaseLayersMount(base: string, containersDir: string): Promise<void> {
  return serially(async () => {
    if (inUse.size || !(await isMounted(base)) || (await anyContainerIn(containersDir))) return;
    // Again after those awaits, with no await before the caches are dropped: a start that took a
    // layer meanwhile keeps its tmpfs; one after finds none known and builds (queued behind this).
    if (inUse.size) return;
    for (const dir of [...known.keys()]) if (path.dirname(dir) === base) known.delete(dir);
    byView.clear();
    await unmountAll(base);
    await rmdir(base).catch(() => undefined);
  });
}

/** Whether the dir holds a container's dir (a name not starting with '.'): read up to the first, not the whole listing (a destroy of 2,500 asks 2,500 times). */
async function anyContainerIn(containersDir: string): Promise<boolean> {
  const dir = await opendir(containersDir).catch(() => undefined);
  if (!dir) return false;
  try {
    for await (const e of dir) if (!e.name.startsWith('.')) return true;
    return false;
  } finally {
    await dir.close().catch(() => undefined);
  }
}
