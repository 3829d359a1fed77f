/**
 * One host-view marker in a container's upper dir: what placing it writes (Placed, recorded in
 * <containerDir>/host-view.json), whether it is still as placed, placing and removing it; and the
 * container's own machine id. host-view.ts decides which markers a container gets.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmod, chown, lchown, lstat, mkdir, readFile, readlink, rename, symlink, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { exec } from '../../util/exec.js';
import { lockedCopy, type ViewEntry } from './host-masks.js';

/** /etc/shadow and /etc/gshadow larger than this are not copied (locked copies are made of at most this). */
const MAX_SHADOW_BYTES = 4 * 1024 * 1024;
export const OPAQUE_XATTRS = ['trusted.overlay.opaque', 'user.overlay.opaque'];

export interface Placed {
  kind: string;
  /** sha256 of a file's content or a symlink's target. */
  sha?: string;
}
export type Record_ = Record<string, Placed>;

export const sha = (s: string) => createHash('sha256').update(s).digest('hex');

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
export async function placedFor(e: ViewEntry, t: ApplyTarget): Promise<Placed | undefined> {
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
export async function stillPlaced(p: string, rec: Placed): Promise<boolean> {
  const st = await lstat(p).catch(() => undefined);
  if (!st) return false;
  if (rec.kind === 'absent') return st.isCharacterDevice() && st.rdev === 0;
  if (rec.kind === 'empty') return st.isDirectory();
  if (rec.kind === 'symlink') return st.isSymbolicLink() && sha(await readlink(p)) === rec.sha;
  return st.isFile() && sha(await readFile(p, 'utf8').catch(() => '')) === rec.sha;
}

/** Parent dirs of a marker in the upper dir, made as copy-up makes them (the node's mode and owner). False: the container replaced one. */
export async function ensureParents(rel: string, t: ApplyTarget): Promise<boolean> {
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
export async function place(e: ViewEntry, t: ApplyTarget, at: string): Promise<void> {
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

export async function unplace(at: string, rec: Placed): Promise<void> {
  if (rec.kind === 'empty') {
    for (const n of OPAQUE_XATTRS) await exec('setfattr', ['-h', '-x', n, '--', at]).catch(() => undefined);
    return;
  }
  await unlink(at);
}
