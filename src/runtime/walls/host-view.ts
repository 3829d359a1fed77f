/**
 * Carries out host-masks.ts' view in a host-template container's private area (its overlay upper
 * dir) before each start: overlayfs whiteouts (absent), opaque dirs (empty), the container's own
 * /etc/machine-id and locked /etc/shadow. Nothing is mounted and nothing is written on the node
 * outside acetate's state dir.
 *
 * Cost: the node is read once per change (the places' listings are cached by their dirs' mtimes,
 * dpkg's lists by dpkg's, see dpkg-owned.ts). The markers are made once per view of the node in a
 * tree of <stateDir>/host-view/ (mknod and setfattr: Node has neither), and a container's first
 * start copies that tree into its upper dir with one `cp -a`. Later starts compare the view with
 * what <containerDir>/host-view.json records as placed: nothing to do unless the node changed.
 *
 * What the container wrote over a marker is its own and kept (overlayfs makes a dir created over a
 * whiteout opaque, so the node's entry stays hidden). A marker acetate placed that the view no
 * longer wants (a node setting changed) is removed if it is still as placed.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmod, chown, lchown, lstat, mkdir, readdir, readFile, readlink, rename, rm, rmdir, stat, symlink, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { exec } from '../../util/exec.js';
import { readJson, writeJsonAtomic } from '../../util/json-file.js';
import { dirsToList, hostView, lockedCopy, type HostView, type HostViewOptions, type NodeEntry, type ViewEntry } from './host-masks.js';
import { packageOwned } from './dpkg-owned.js';
import { shiftTree } from './userns.js';
import { RANGE_SIZE } from './id-pool.js';

/** /etc/shadow and /etc/gshadow larger than this are not copied (locked copies are made of at most this). */
const MAX_SHADOW_BYTES = 4 * 1024 * 1024;
const OPAQUE_XATTRS = ['trusted.overlay.opaque', 'user.overlay.opaque'];

async function listDir(hostRoot: string, dir: string): Promise<NodeEntry[] | undefined> {
  const names = await readdir(path.join(hostRoot, dir)).catch(() => undefined);
  if (!names) return undefined;
  const out = await Promise.all(
    names.map(async (name): Promise<NodeEntry | undefined> => {
      const st = await lstat(path.join(hostRoot, dir, name)).catch(() => undefined);
      if (!st) return undefined;
      const type = st.isDirectory() ? 'dir' : st.isFile() ? 'file' : st.isSymbolicLink() ? 'symlink' : 'other';
      return { name, type, uid: st.uid, mode: st.mode };
    }),
  );
  return out.filter((e): e is NodeEntry => !!e);
}

const listings = new Map<string, { key: string; dirs: string[]; listing: Map<string, NodeEntry[]> }>();

/** The node's listing hostView needs, read again only when one of its dirs changed. */
async function nodeListing(hostRoot: string, o: HostViewOptions): Promise<Map<string, NodeEntry[]>> {
  const read = async (dirs: string[], into = new Map<string, NodeEntry[]>()) => {
    await Promise.all(
      dirs.map(async (d) => {
        const l = await listDir(hostRoot, d);
        if (l) into.set(d, l);
      }),
    );
    return into;
  };
  const keyOf = async (dirs: readonly string[]) => {
    const mtimes = await Promise.all(
      dirs.map((d) =>
        stat(path.join(hostRoot, d)).then(
          (s) => `${d}@${s.mtimeMs}`,
          () => `${d}@-`,
        ),
      ),
    );
    return `${hostRoot}|${JSON.stringify(o)}|${mtimes.join('|')}`;
  };
  // A start only stats the dirs listed last time: the listing is read again when one changed.
  const cached = listings.get(hostRoot);
  if (cached && cached.key === (await keyOf(cached.dirs))) return cached.listing;
  const first = await read(dirsToList(o));
  const dirs = dirsToList(o, first, o);
  const key = await keyOf(dirs);
  const listing = await read(
    dirs.filter((d) => !first.has(d)),
    first,
  );
  listings.set(hostRoot, { key, dirs, listing });
  return listing;
}

const views = new WeakMap<object, { owned?: Set<string>; view: HostView }>();

/** The view of this node (host-masks.ts), from its current listing and dpkg's lists; the same object while neither changed. */
export async function currentHostView(hostRoot: string, o: Omit<HostViewOptions, 'packageOwned'>, stateDir: string): Promise<HostView> {
  const owned = await packageOwned(hostRoot, path.join(stateDir, 'host-view'));
  const opts: HostViewOptions = { ...o, ...(owned ? { packageOwned: owned } : {}) };
  const listing = await nodeListing(hostRoot, opts);
  const had = views.get(listing);
  if (had && had.owned === owned) return had.view;
  const view = hostView(listing, opts);
  views.set(listing, { owned, view });
  return view;
}

interface Placed {
  kind: string;
  /** sha256 of a file's content or a symlink's target. */
  sha?: string;
}
type Record_ = Record<string, Placed>;

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

export interface ApplyTarget {
  hostRoot: string;
  stateDir: string;
  /** <stateDir>/containers/<id>: host-view.json and machine-id are kept here. */
  containerDir: string;
  upper: string;
  /** Node id the container's root is (0 without a user namespace): owner of what is written. */
  idBase: number;
}

/** The container's machine id: 32 hex digits (systemd's format), made once and kept in its dir. */
export async function machineId(containerDir: string): Promise<string> {
  const file = path.join(containerDir, 'machine-id');
  const had = (await readFile(file, 'utf8').catch(() => '')).trim();
  if (/^[0-9a-f]{32}$/.test(had)) return had;
  const id = randomBytes(16).toString('hex');
  await writeFile(`${file}.tmp`, `${id}\n`, { mode: 0o644 });
  await rename(`${file}.tmp`, file);
  return id;
}

/** What a file marker holds for this container. */
async function fileContent(e: ViewEntry, t: ApplyTarget): Promise<string | undefined> {
  if (e.action.kind === 'machine-id') return `${await machineId(t.containerDir)}\n`;
  if (e.action.kind === 'locked-copy') {
    const p = path.join(t.hostRoot, e.path);
    const st = await lstat(p).catch(() => undefined);
    if (!st?.isFile() || st.size > MAX_SHADOW_BYTES) return undefined;
    return lockedCopy(await readFile(p, 'utf8'));
  }
  return undefined;
}

/** The marker's record (what placing it wrote); undefined when the node has nothing to mark. */
async function placedFor(e: ViewEntry, t: ApplyTarget): Promise<Placed | undefined> {
  switch (e.action.kind) {
    case 'absent':
      return { kind: 'absent' };
    case 'empty':
      // An empty dir only where the node has one (no /etc/docker made where the node has none).
      return (await lstat(path.join(t.hostRoot, e.path)).catch(() => undefined)) ? { kind: 'empty' } : undefined;
    case 'symlink': {
      const node = await lstat(path.join(t.hostRoot, e.path)).catch(() => undefined);
      return node ? { kind: 'symlink', sha: sha(e.action.target) } : undefined;
    }
    default: {
      const c = await fileContent(e, t);
      return c === undefined ? undefined : { kind: e.action.kind, sha: sha(c) };
    }
  }
}

/** Does the upper's entry still hold what acetate placed? */
async function stillPlaced(p: string, rec: Placed): Promise<boolean> {
  const st = await lstat(p).catch(() => undefined);
  if (!st) return false;
  if (rec.kind === 'absent') return st.isCharacterDevice() && st.rdev === 0;
  if (rec.kind === 'empty') return st.isDirectory();
  if (rec.kind === 'symlink') return st.isSymbolicLink() && sha(await readlink(p)) === rec.sha;
  return st.isFile() && sha(await readFile(p, 'utf8').catch(() => '')) === rec.sha;
}

/** Parent dirs of a marker in the upper dir, made as copy-up makes them (the node's mode and owner). False: the container replaced one. */
async function ensureParents(rel: string, t: ApplyTarget): Promise<boolean> {
  const parts = rel.split('/').filter(Boolean).slice(0, -1);
  let cur = '';
  for (const part of parts) {
    cur = `${cur}/${part}`;
    const up = path.join(t.upper, cur);
    const st = await lstat(up).catch(() => undefined);
    if (st) {
      if (!st.isDirectory()) return false;
      continue;
    }
    const node = await lstat(path.join(t.hostRoot, cur)).catch(() => undefined);
    await mkdir(up);
    await chown(up, (node?.uid ?? 0) + t.idBase, (node?.gid ?? 0) + t.idBase);
    await chmod(up, node?.isDirectory() ? node.mode & 0o7777 : 0o755);
  }
  return true;
}

/** Places one marker at upper/<rel> (nothing there yet). */
async function place(e: ViewEntry, t: ApplyTarget, at: string): Promise<void> {
  const node = await lstat(path.join(t.hostRoot, e.path)).catch(() => undefined);
  const uid = (node?.uid ?? 0) + t.idBase;
  const gid = (node?.gid ?? 0) + t.idBase;
  switch (e.action.kind) {
    case 'absent':
      await exec('mknod', ['--', at, 'c', '0', '0']);
      await chown(at, uid, gid);
      return;
    case 'empty':
      await mkdir(at);
      await chown(at, uid, gid);
      await chmod(at, node?.isDirectory() ? node.mode & 0o7777 : 0o755);
      for (const n of OPAQUE_XATTRS) await exec('setfattr', ['-h', '-n', n, '-v', 'y', '--', at]);
      return;
    case 'symlink':
      await symlink(e.action.target, at);
      await lchown(at, uid, gid);
      return;
    default: {
      const c = await fileContent(e, t);
      if (c === undefined) return;
      await writeFile(at, c, { mode: e.action.kind === 'machine-id' ? 0o444 : node ? node.mode & 0o777 : 0o640 });
      await chown(at, uid, gid);
      await chmod(at, e.action.kind === 'machine-id' ? 0o444 : node ? node.mode & 0o777 : 0o640);
    }
  }
}

async function unplace(at: string, rec: Placed): Promise<void> {
  if (rec.kind === 'empty') {
    for (const n of OPAQUE_XATTRS) await exec('setfattr', ['-h', '-x', n, '--', at]).catch(() => undefined);
    return;
  }
  await unlink(at);
}

/**
 * The markers of every absent and empty entry as a tree of their own, made once per view under
 * <stateDir>/host-view/tree-<hash> (owned by the node's ids): copied whole into a new container's
 * upper, then re-owned to its range.
 */
async function markerTree(view: HostView, want: ReadonlyMap<string, Placed>, t: ApplyTarget): Promise<{ dir: string; entries: ViewEntry[] }> {
  // Everything but the machine id is the same for every container of the node.
  const entries = view.entries.filter((e) => e.action.kind !== 'machine-id' && want.has(e.path));
  const hash = sha(JSON.stringify([t.hostRoot, t.idBase, entries.map((e) => [e.path, want.get(e.path)])])).slice(0, 16);
  const base = path.join(t.stateDir, 'host-view');
  const dir = path.join(base, `tree-${hash}`);
  if ((await lstat(dir).catch(() => undefined))?.isDirectory()) return { dir, entries };
  await mkdir(base, { recursive: true, mode: 0o700 });
  const tmp = path.join(base, `.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(tmp, { mode: 0o755 });
  try {
    const target: ApplyTarget = { ...t, upper: tmp };
    const whiteouts: string[] = [];
    const opaque: string[] = [];
    for (const e of entries) {
      if (!(await ensureParents(e.path, target))) continue;
      const at = path.join(tmp, e.path);
      const node = await lstat(path.join(t.hostRoot, e.path)).catch(() => undefined);
      if (e.action.kind === 'absent') {
        whiteouts.push(at);
        continue;
      }
      if (e.action.kind !== 'empty') {
        await place(e, target, at);
        continue;
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
    if ((await lstat(dir).catch(() => undefined))?.isDirectory()) return { dir, entries };
    throw new Error(`cannot make the host template's markers in ${base}`, { cause: err });
  }
  // Older trees are copy sources only (never a mounted layer): the previous views' are removed.
  for (const n of await readdir(base))
    if (n.startsWith('tree-') && n !== path.basename(dir) && n !== `${path.basename(dir)}.stock`)
      await rm(path.join(base, n), { recursive: true, force: true }).catch(() => undefined);
  return { dir, entries };
}

/** How many copies of the marker tree one refill makes: one process per this many new containers. */
const STOCK_BATCH = 16;

/** Copies the tree's entries into an (empty) upper dir with one `cp -a`; false if that failed. */
async function copyTree(tree: string, upper: string): Promise<boolean> {
  const top = await readdir(tree);
  if (top.length === 0) return true;
  return exec('cp', ['-a', '-t', upper, '--', ...top.map((n) => path.join(tree, n))]).then(
    () => true,
    () => false,
  );
}

/**
 * Makes a new container's (empty) upper dir a ready copy of the marker tree: copies are made
 * STOCK_BATCH at a time by one process (<tree>.stock/<n>) and each is renamed into place, keeping
 * the upper dir's owner and mode. False when none can be used (the upper dir on another
 * filesystem, e.g. a resources.disk image): the caller copies.
 */
async function takeFromStock(tree: string, upper: string): Promise<boolean> {
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

/** STOCK_BATCH more copies of the tree in its stock, by one process (made under a '.' name, then renamed). */
function refill(tree: string, stock: string): Promise<void> {
  const running = refilling.get(stock);
  if (running) return running;
  const p = (async () => {
    await mkdir(stock, { recursive: true, mode: 0o700 });
    const tag = `${process.pid}-${randomBytes(4).toString('hex')}`;
    const script =
      'src=$1; dst=$2; tag=$3; n=$4; i=0; while [ $i -lt $n ]; do cp -a -- "$src" "$dst/.$tag-$i" && mv -- "$dst/.$tag-$i" "$dst/$tag-$i" || exit 1; i=$((i+1)); done';
    await exec('sh', ['-c', script, 'sh', tree, stock, tag, String(STOCK_BATCH)]);
  })().finally(() => refilling.delete(stock));
  refilling.set(stock, p);
  return p;
}

const nodeParts = new WeakMap<HostView, { hostRoot: string; placed: Map<string, Placed> }>();

/** Before a start: the container's upper dir carries the view; returns how many markers changed. */
export async function applyHostView(view: HostView, t: ApplyTarget): Promise<number> {
  const recFile = path.join(t.containerDir, 'host-view.json');
  const rec: Record_ = { ...((await readJson<Record_>(recFile).catch(() => undefined)) ?? {}) };
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
  const same = (a?: Placed, b?: Placed) => !!a && !!b && a.kind === b.kind && a.sha === b.sha;
  if (want.size === Object.keys(rec).length && [...want].every(([p, w]) => same(w, rec[p]))) return 0;
  let changed = 0;
  if (Object.keys(rec).length === 0 && (await readdir(t.upper)).length === 0) {
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
  for (const [p, r] of Object.entries(rec)) {
    if (same(want.get(p), r)) continue;
    const at = path.join(t.upper, p);
    if (await stillPlaced(at, r)) {
      await unplace(at, r);
      changed++;
    }
    delete rec[p];
  }
  for (const e of view.entries) {
    const w = want.get(e.path);
    if (!w || rec[e.path]) continue;
    const at = path.join(t.upper, e.path);
    if ((await lstat(at).catch(() => undefined)) || !(await ensureParents(e.path, t))) continue; // the container's own
    await place(e, t, at);
    rec[e.path] = w;
    changed++;
  }
  await writeJsonAtomic(recFile, rec);
  return changed;
}
