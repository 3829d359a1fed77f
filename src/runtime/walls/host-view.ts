/**
 * Carries out host-masks.ts' view in a host-template container: overlayfs whiteouts (absent),
 * opaque dirs (empty), the container's own /etc/machine-id and locked /etc/shadow. Nothing is
 * mounted and nothing is written on the node outside acetate's state dir.
 *
 * What every container of the node gets is one shared lower layer above the node's `/`
 * (host-layer.ts), made once per view of the node; the container's upper dir (its private area)
 * gets its own machine id, and, while it runs, the markers of what the node made after its start
 * that its layer lacks (host-view-watch.ts). <containerDir>/host-view.json records what was placed
 * in the upper dir, host-view-target.json where and over which layer; a later start compares the
 * view with that: the markers its new layer now holds are taken out of the upper dir again.
 *
 * Cost: the node is read once per change (the places' listings are cached by their dirs' mtimes,
 * dpkg's lists by dpkg's, see dpkg-owned.ts); a create writes the machine id and two records.
 *
 * What the container wrote over a marker is its own and kept (overlayfs makes a dir created over a
 * whiteout opaque, so the node's entry stays hidden). A marker acetate placed that the view no
 * longer wants (a node setting changed) is removed if it is still as placed; one in the layer
 * stays until the container's next start (a layer is never changed under a running container).
 */
import { closeSync } from 'node:fs';
import path from 'node:path';
import { readJson, readJsonUncached, writeJsonAtomic } from '../../util/json-file.js';
import type { HostView } from './host-masks.js';
import {
  ensureParents,
  isFileMarker,
  place,
  placedFor,
  replaceFile,
  stillPlaced,
  unplace,
  type ApplyTarget,
  type Placed,
  type Record_,
} from './host-markers.js';
import { readLayer, TARGET_FILE, type HostLayer, type TargetRecord } from './host-layer.js';
import { recheckPlaced } from './host-marker-check.js';
import { lstatEntry, openParent } from './upper-beneath.js';
import { messageOf } from '../../contracts/errors.js';

export { currentHostView } from './host-listing.js';
export { machineId, type ApplyTarget } from './host-markers.js';

const nodeParts = new WeakMap<HostView, { hostRoot: string; placed: Map<string, Placed> }>();

/** One apply at a time per container (a start and host-view-watch.ts may both want it). */
const busy = new Map<string, Promise<unknown>>();

/**
 * Before a start (and while it runs, host-view-watch.ts): the container's upper dir carries the view;
 * returns how many markers changed. `recheck` (at a start): the placed markers are checked against
 * the upper dir first (host-marker-check.ts: a getfattr process per container); the watcher's
 * passes over every running container only place what a changed view adds (a getfattr per
 * container made the first pass of `run` at 2,500 containers a minute of a core).
 */
export function applyHostView(view: HostView, t: ApplyTarget, opts: LayerOf = { recheck: true }): Promise<number> {
  const prev = busy.get(t.containerDir) ?? Promise.resolve();
  const next = prev.catch(() => undefined).then(() => applyNow(view, t, opts));
  busy.set(t.containerDir, next);
  void next.finally(() => busy.get(t.containerDir) === next && busy.delete(t.containerDir)).catch(() => undefined);
  return next;
}

/**
 * Which layer the container's / has over the node's: at a start (`recheck`), the one it is started
 * with; beside a running container (the watcher), the one its record names, read from `layersDir`
 * under the container's turn (busy), so a start between cannot change it underneath.
 */
export type LayerOf = { recheck: true; layer?: HostLayer } | { recheck: false; layersDir: string };

/** What `view` places for every container of the node (all but machine ids), by path: worked out once per view. */
export async function nodePlaced(view: HostView, t: ApplyTarget): Promise<ReadonlyMap<string, Placed>> {
  let common = nodeParts.get(view);
  if (!common || common.hostRoot !== t.hostRoot) {
    common = { hostRoot: t.hostRoot, placed: new Map() };
    for (const e of view.entries) {
      const p = e.action.kind === 'machine-id' ? undefined : await placedFor(e, t);
      if (p) common.placed.set(e.path, p);
    }
    nodeParts.set(view, common);
  }
  return common.placed;
}

const same = (a?: Placed, b?: Placed) => !!a && !!b && a.kind === b.kind && a.sha === b.sha;

async function applyNow(view: HostView, t: ApplyTarget, opts: LayerOf): Promise<number> {
  const { recheck } = opts;
  const targetFile = path.join(t.containerDir, TARGET_FILE);
  const had = await readJson<TargetRecord>(targetFile).catch(() => undefined);
  let layer: HostLayer | undefined;
  if (opts.recheck) layer = opts.layer;
  else if (typeof had?.layer === 'string') {
    layer = await readLayer(opts.layersDir, had.layer);
    // Gone: its tmpfs went with a reboot (or the instance's last container), so the container is
    // not running over it; its next start takes the current layer. Nothing placed meanwhile (else
    // `run`'s first pass after a reboot wrote every marker into every stopped container).
    if (!layer) return 0;
  }
  // Written before anything else: from here on the layer is named by the container (host-layer.ts
  // keeps it). Only a start changes it: a running container keeps the layer it started with.
  const layerName = recheck ? layer?.name : had?.layer;
  if (had?.upper !== t.upper || had.idBase !== t.idBase || had.layer !== layerName)
    await writeJsonAtomic(targetFile, { upper: t.upper, idBase: t.idBase, ...(layerName ? { layer: layerName } : {}) } satisfies TargetRecord);
  const recFile = path.join(t.containerDir, 'host-view.json');
  // Not kept by readJson's cache: read at a start or a rare pass, ~3 KB parsed per container.
  const read = await readJsonUncached<Record_>(recFile).catch(() => undefined);
  const rec: Record_ = read && typeof read === 'object' && !Array.isArray(read) ? read : {};
  // The upper dir gets what the container's layer does not hold as the view wants it (all of it
  // for a container started before layers), and its own machine id.
  const want = new Map<string, Placed>();
  const common = await nodePlaced(view, t);
  for (const e of view.entries) {
    const p = e.action.kind === 'machine-id' ? await placedFor(e, t) : common.get(e.path);
    if (p && !same(p, layer?.placed.get(e.path))) want.set(e.path, p);
  }
  // What the record says placed, checked against the upper dir (the range's root can remove markers there).
  const rechecked = recheck && Object.keys(rec).length ? await recheckPlaced(rec, t.upper, t.idBase !== 0) : 0;
  if (want.size === Object.keys(rec).length && [...want].every(([p, w]) => same(w, rec[p]))) return rechecked;
  let changed = rechecked;
  // The container runs meanwhile (host-view-watch.ts): every path under its upper dir is opened
  // without following a link it may put there (upper-beneath.ts). One entry that fails (its disk
  // full: the container can fill it) does not stop the others, and what was done is recorded.
  const failed: Error[] = [];
  const each = async (p: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (err) {
      failed.push(new Error(`${p}: ${messageOf(err)}`, { cause: err }));
    }
  };
  for (const [p, r] of Object.entries(rec)) {
    const w = want.get(p);
    // A file whose content changed (the node's /etc/shadow) is replaced below, never removed
    // first: a copy that cannot be written leaves the old one hiding the node's.
    if (same(w, r) || (w && w.kind === r.kind && isFileMarker(r))) continue;
    await each(p, async () => {
      const at = await openParent(t.upper, p);
      if (!at) return; // a dir above it is a link now: tried again at the next pass
      try {
        if (await stillPlaced(at, r)) {
          await unplace(at, r);
          changed++;
        }
      } finally {
        closeSync(at.fd);
      }
      delete rec[p];
    });
  }
  for (const e of view.entries) {
    const w = want.get(e.path);
    const had = rec[e.path];
    if (!w || same(w, had)) continue;
    await each(e.path, async () => {
      const at = await ensureParents(e.path, t);
      if (!at) return; // a dir above it is the container's own
      let placed: Placed | undefined;
      try {
        if (had) {
          // Another kind still recorded (its removal failed above): tried again at the next pass.
          if (had.kind !== w.kind || !isFileMarker(had)) return;
          // A file marker with new content: replaced if still as placed, else the container's own.
          if (!(await stillPlaced(at, had))) {
            delete rec[e.path];
            return;
          }
          placed = await replaceFile(e, t, at);
        } else {
          if (await lstatEntry(at)) return; // the container's own
          placed = await place(e, t, at);
        }
      } finally {
        closeSync(at.fd);
      }
      // What was written (the node's file is read again to write it), not what the view said.
      if (!placed) return;
      rec[e.path] = placed;
      changed++;
    });
  }
  await writeJsonAtomic(recFile, rec);
  // Every failure kept (the caller tells a full disk among them: disk/room-reserve.ts isNoRoom).
  if (failed.length === 1) throw failed[0];
  if (failed.length) throw new AggregateError(failed, `${failed[0]!.message} (and ${failed.length - 1} more)`);
  return changed;
}
