/**
 * Carries out host-masks.ts' view in a host-template container's private area (its overlay upper
 * dir) before each start: overlayfs whiteouts (absent), opaque dirs (empty), the container's own
 * /etc/machine-id and locked /etc/shadow. Nothing is mounted and nothing is written on the node
 * outside acetate's state dir.
 *
 * Cost: the node is read once per change (the places' listings are cached by their dirs' mtimes,
 * dpkg's lists by dpkg's, see dpkg-owned.ts). The markers are made once per view of the node in a
 * tree of <stateDir>/host-view/ (mknod and setfattr: Node has neither), and a container's first
 * start copies that tree into its upper dir with one `cp` (types, modes, owners, xattrs). Later starts compare the view with
 * what <containerDir>/host-view.json records as placed: nothing to do unless the node changed or a
 * placed marker is gone from the upper dir (host-marker-check.ts).
 *
 * What the container wrote over a marker is its own and kept (overlayfs makes a dir created over a
 * whiteout opaque, so the node's entry stays hidden). A marker acetate placed that the view no
 * longer wants (a node setting changed) is removed if it is still as placed.
 */
import { closeSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { readJson, readJsonUncached, writeJsonAtomic } from '../../util/json-file.js';
import type { HostView } from './host-masks.js';
import { shiftTree } from './userns.js';
import { RANGE_SIZE } from './id-pool.js';
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
import { copyTree, markerTree, takeFromStock } from './host-marker-stock.js';
import { recheckPlaced } from './host-marker-check.js';
import { lstatEntry, openParent } from './upper-beneath.js';
import { messageOf } from '../../contracts/errors.js';

export { currentHostView } from './host-listing.js';
export { machineId, type ApplyTarget } from './host-markers.js';

const nodeParts = new WeakMap<HostView, { hostRoot: string; placed: Map<string, Placed> }>();

/** <containerDir>/host-view-target.json: where its markers go, for host-view-watch.ts (a container started by an earlier acetate). */
export const TARGET_FILE = 'host-view-target.json';

export interface TargetRecord {
  upper: string;
  idBase: number;
}

/** One apply at a time per container (a start and host-view-watch.ts may both want it). */
const busy = new Map<string, Promise<unknown>>();

/**
 * Before a start (and while it runs, host-view-watch.ts): the container's upper dir carries the view;
 * returns how many markers changed. `recheck` (at a start): the placed markers are checked against
 * the upper dir first (host-marker-check.ts: a getfattr process per container); the watcher's
 * passes over every running container only place what a changed view adds (a getfattr per
 * container made the first pass of `run` at 2,500 containers a minute of a core).
 */
export function applyHostView(view: HostView, t: ApplyTarget, opts: { recheck: boolean } = { recheck: true }): Promise<number> {
  const prev = busy.get(t.containerDir) ?? Promise.resolve();
  const next = prev.catch(() => undefined).then(() => applyNow(view, t, opts.recheck));
  busy.set(t.containerDir, next);
  void next.finally(() => busy.get(t.containerDir) === next && busy.delete(t.containerDir)).catch(() => undefined);
  return next;
}

async function applyNow(view: HostView, t: ApplyTarget, recheck: boolean): Promise<number> {
  const targetFile = path.join(t.containerDir, TARGET_FILE);
  const had = await readJson<TargetRecord>(targetFile).catch(() => undefined);
  if (had?.upper !== t.upper || had.idBase !== t.idBase) await writeJsonAtomic(targetFile, { upper: t.upper, idBase: t.idBase } satisfies TargetRecord);
  const recFile = path.join(t.containerDir, 'host-view.json');
  // Not kept by readJson's cache: read at a start or a rare pass, ~3 KB parsed per container.
  const read = await readJsonUncached<Record_>(recFile).catch(() => undefined);
  const rec: Record_ = read && typeof read === 'object' && !Array.isArray(read) ? read : {};
  const want = new Map<string, Placed>();
  // What the node gives every container is worked out once per view; only the machine id is the container's.
  let common = nodeParts.get(view);
  if (!common || common.hostRoot !== t.hostRoot) {
    common = { hostRoot: t.hostRoot, placed: new Map() };
    for (const e of view.entries) {
      const p = e.action.kind === 'machine-id' ? undefined : await placedFor(e, t);
      if (p) common.placed.set(e.path, p);
    }
    nodeParts.set(view, common);
  }
  for (const e of view.entries) {
    const p = e.action.kind === 'machine-id' ? await placedFor(e, t) : common.placed.get(e.path);
    if (p) want.set(e.path, p);
  }
  // What the record says placed, checked against the upper dir (the range's root can remove markers there).
  const rechecked = recheck && Object.keys(rec).length ? await recheckPlaced(rec, t.upper, t.idBase !== 0) : 0;
  const same = (a?: Placed, b?: Placed) => !!a && !!b && a.kind === b.kind && a.sha === b.sha;
  if (want.size === Object.keys(rec).length && [...want].every(([p, w]) => same(w, rec[p]))) return rechecked;
  let changed = rechecked;
  // Only at a start (recheck): the watcher's passes run beside the container, and this branch works
  // on the upper dir by its paths (a record lost or unreadable would bring it there).
  if (recheck && Object.keys(rec).length === 0 && (await readdir(t.upper)).length === 0) {
    // A new container: a copy of the tree taken from the stock (one rename), else copied in.
    // One tree for the node, owned by the node's ids: each container has its own range, so a tree
    // per range would be made (and its stock filled) for every container. The copy is re-owned to
    // the container's range (the upper holds only the markers yet: a few dozen entries).
    const tree = await markerTree(view, want, { ...t, idBase: 0 });
    const copied = (await takeFromStock(tree.dir, t.upper)) || (await copyTree(tree.dir, t.upper));
    if (copied && t.idBase) await shiftTree(t.upper, 0, t.idBase, RANGE_SIZE);
    if (copied) for (const e of tree.entries) rec[e.path] = want.get(e.path)!;
    changed += copied ? tree.entries.length : 0;
  }
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
