/**
 * The markers every host-template container of the node gets (all but its machine id), made once
 * per view as a tree of their own under <stateDir>/host-view/tree-<hash>, and a stock of ready
 * copies of it: a new container's upper dir is one of them, taken by a rename (host-view.ts).
 */
import { randomBytes } from 'node:crypto';
import { chmod, chown, lstat, mkdir, readdir, rename, rm, rmdir } from 'node:fs/promises';
import { closeSync } from 'node:fs';
import path from 'node:path';
import { exec } from '../../util/exec.js';
import { pidExists } from '../../util/processes.js';
import type { HostView, ViewEntry } from './host-masks.js';
import { ensureParents, nodeEntry, OPAQUE_XATTRS, place, sha, type ApplyTarget, type Placed } from './host-markers.js';

/**
 * The markers of every absent and empty entry as a tree of their own, made once per view under
 * <stateDir>/host-view/tree-<hash> (owned by the node's ids): copied whole into a new container's
 * upper, then re-owned to its range.
 */
export async function markerTree(view: HostView, want: ReadonlyMap<string, Placed>, t: ApplyTarget): Promise<{ dir: string; entries: ViewEntry[] }> {
  // Everything but the machine id is the same for every container of the node.
  const entries = view.entries.filter((e) => e.action.kind !== 'machine-id' && want.has(e.path));
  const hash = sha(JSON.stringify([t.hostRoot, t.idBase, entries.map((e) => [e.path, want.get(e.path)])])).slice(0, 16);
  const base = path.join(t.stateDir, 'host-view');
  const dir = path.join(base, `tree-${hash}`);
  if ((await lstat(dir).catch(() => undefined))?.isDirectory()) return { dir, entries };
  // Concurrent first starts of one view wait for one build: each build costs a few processes
  // (mknod, chown, setfattr), and eight at once on a fresh node blocked the main thread ~240 ms
  // per container (a create profile at --concurrency 8).
  let build = building.get(dir);
  if (!build) {
    build = buildTree(entries, t, base, dir).finally(() => building.delete(dir));
    building.set(dir, build);
  }
  await build;
  return { dir, entries };
}

const building = new Map<string, Promise<void>>();

async function buildTree(entries: ViewEntry[], t: ApplyTarget, base: string, dir: string): Promise<void> {
  if ((await lstat(dir).catch(() => undefined))?.isDirectory()) return;
  await mkdir(base, { recursive: true, mode: 0o700 });
  const tmp = path.join(base, `.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(tmp, { mode: 0o755 });
  try {
    const target: ApplyTarget = { ...t, upper: tmp };
    const whiteouts: string[] = [];
    const opaque: string[] = [];
    for (const e of entries) {
      // The tree is built in acetate's own dir (no container reaches it): paths are used as
      // they are, apart from place(), which takes an opened dir (upper-beneath.ts).
      const parent = await ensureParents(e.path, target);
      if (!parent) continue;
      const at = path.join(tmp, e.path);
      const node = await nodeEntry(t.hostRoot, e.path);
      try {
        if (e.action.kind === 'absent') {
          whiteouts.push(at);
          continue;
        }
        if (e.action.kind !== 'empty') {
          await place(e, target, parent);
          continue;
        }
      } finally {
        closeSync(parent.fd);
      }
      await mkdir(at);
      await chown(at, (node?.uid ?? 0) + t.idBase, (node?.gid ?? 0) + t.idBase);
      await chmod(at, node?.isDirectory() ? node.mode & 0o7777 : 0o755);
      opaque.push(at);
    }
    // One process for every whiteout, one per xattr name for the opaque dirs.
    if (whiteouts.length) {
      await exec('sh', ['-c', 'for p in "$@"; do mknod -- "$p" c 0 0 || exit 1; done', 'sh', ...whiteouts]);
      if (t.idBase) await exec('chown', ['-h', `${t.idBase}:${t.idBase}`, '--', ...whiteouts]);
    }
    for (const n of OPAQUE_XATTRS) if (opaque.length) await exec('setfattr', ['-h', '-n', n, '-v', 'y', '--', ...opaque]);
    await rename(tmp, dir);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    if ((await lstat(dir).catch(() => undefined))?.isDirectory()) return;
    throw new Error(`cannot make the host template's markers in ${base}`, { cause: err });
  }
  // Older trees are copy sources only (never a mounted layer): the previous views' are removed.
  for (const n of await readdir(base))
    if (n.startsWith('tree-') && n !== path.basename(dir) && n !== `${path.basename(dir)}.stock`)
      await rm(path.join(base, n), { recursive: true, force: true }).catch(() => undefined);
}

/** The most copies of the marker tree one refill makes (one process per refill; see refill). */
const STOCK_BATCH = 16;

/**
 * What a copy of the tree keeps: the markers' types (whiteouts are 0:0 character devices), modes,
 * owners and xattrs (trusted.overlay.opaque). Not `cp -a`: its timestamps (a utimensat per entry)
 * and ACL and SELinux lookups, which no marker has, doubled the cost of every copy (14 → 6.6 ms
 * of system time for the ~100 entries of this node's tree, measured), ~8 ms of CPU per create.
 */
const CP_MARKERS = ['-dR', '--preserve=mode,ownership,xattr'];

/**
 * Copies the tree's entries into an (empty) upper dir with one `cp`; false if that failed, or if
 * the tree is gone: a start beside it built the tree of a newer view (the node made a data dir)
 * and removed this one. The caller then places the markers one by one (host-view.ts).
 */
export async function copyTree(tree: string, upper: string): Promise<boolean> {
  let top: string[];
  try {
    top = await readdir(tree);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
  if (top.length === 0) return true;
  return exec('cp', [...CP_MARKERS, '-t', upper, '--', ...top.map((n) => path.join(tree, n))]).then(
    () => true,
    () => false,
  );
}

/**
 * Makes a new container's (empty) upper dir a ready copy of the marker tree: copies are made
 * up to STOCK_BATCH at a time by one process (<tree>.stock/<n>) and each is renamed into place, keeping
 * the upper dir's owner and mode. False when none can be used (the upper dir on another
 * filesystem, e.g. a resources.disk image): the caller copies.
 */
export async function takeFromStock(tree: string, upper: string): Promise<boolean> {
  const stock = `${tree}.stock`;
  const st = await lstat(upper);
  for (let attempt = 0; attempt < 2; attempt++) {
    // Names starting with '.' are copies still being made.
    const ready = (await readdir(stock).catch(() => [] as string[])).filter((n) => !n.startsWith('.'));
    // Running low: the next batch is made while this start goes on (one refill at a time per process).
    if (ready.length <= STOCK_BATCH / 4 && attempt === 0 && ready.length > 0) void refill(tree, stock).catch(() => undefined);
    for (const n of ready) {
      const claimed = path.join(path.dirname(tree), `.claim-${process.pid}-${randomBytes(4).toString('hex')}`);
      // Claimed by a rename, so two starts never take the same copy.
      if (
        !(await rename(path.join(stock, n), claimed).then(
          () => true,
          () => false,
        ))
      )
        continue;
      await rmdir(upper); // empty: checked by the caller
      const moved = await rename(claimed, upper).then(
        () => true,
        () => false,
      );
      if (!moved) {
        await rm(claimed, { recursive: true, force: true });
        if (!(await lstat(upper).catch(() => undefined))) await mkdir(upper, { mode: st.mode & 0o7777 });
        await chown(upper, st.uid, st.gid);
        return false;
      }
      await chown(upper, st.uid, st.gid);
      await chmod(upper, st.mode & 0o7777);
      return true;
    }
    if (
      attempt === 0 &&
      !(await refill(tree, stock).then(
        () => true,
        () => false,
      ))
    )
      return false;
  }
  return false;
}

const refilling = new Map<string, Promise<void>>();
/** How many copies the next refill of each stock makes: 2 at first, doubling to STOCK_BATCH. */
const nextBatch = new Map<string, number>();

/**
 * More copies of the tree in its stock, by one process (made under a '.' name, then renamed). The
 * first refill of a stock in a process makes 2 and each next one twice as many, up to STOCK_BATCH:
 * a node (or a test) that starts a few containers does not pay for 16 copies it never takes
 * (1,900 `cp` and as many `mv` processes over one `npm test`), and a burst soon gets the full batch.
 */
function refill(tree: string, stock: string): Promise<void> {
  const running = refilling.get(stock);
  if (running) return running;
  const n = nextBatch.get(stock) ?? 2;
  nextBatch.set(stock, Math.min(STOCK_BATCH, n * 2));
  const p = (async () => {
    await mkdir(stock, { recursive: true, mode: 0o700 });
    await sweepDeadCopies(stock, path.dirname(tree));
    const tag = `${process.pid}-${randomBytes(4).toString('hex')}`;
    const script = `src=$1; dst=$2; tag=$3; n=$4; i=0; while [ $i -lt $n ]; do cp ${CP_MARKERS.join(' ')} -- "$src" "$dst/.$tag-$i" || exit 1; i=$((i+1)); done`;
    const made = Array.from({ length: n }, (_, i) => path.join(stock, `.${tag}-${i}`));
    try {
      await exec('sh', ['-c', script, 'sh', tree, stock, tag, String(n)]);
    } catch (err) {
      // Which copy was cut short is not known: none of this batch is published.
      for (const m of made) await rm(m, { recursive: true, force: true }).catch(() => undefined);
      throw err;
    }
    try {
      for (const m of made) await rename(m, path.join(stock, path.basename(m).slice(1)));
    } catch (err) {
      for (const m of made) await rm(m, { recursive: true, force: true }).catch(() => undefined);
      throw err;
    }
  })().finally(() => refilling.delete(stock));
  refilling.set(stock, p);
  return p;
}

/**
 * What a process that died mid-way left: copies it was still making in the stock (`.<pid>-<tag>-<i>`,
 * a refill is fire-and-forget), copies it had claimed for a start (`.claim-<pid>-<tag>` beside
 * the trees) and a tree it was building (`.tmp-<pid>-<tag>`). Only a dead process's: a pid that
 * lives (or was reused) keeps its entries until a later sweep. Each refill sweeps, so they do not
 * pile up in the state dir.
 */
export async function sweepDeadCopies(stock: string, trees: string): Promise<void> {
  for (const [dir, pattern] of [
    [stock, /^\.(\d+)-[0-9a-f]+-\d+$/],
    [trees, /^\.(?:claim|tmp)-(\d+)-[0-9a-f]+$/],
  ] as const) {
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      const pid = Number(pattern.exec(name)?.[1]);
      if (pid && pid !== process.pid && !pidExists(pid)) await rm(path.join(dir, name), { recursive: true, force: true }).catch(() => undefined);
    }
  }
}
