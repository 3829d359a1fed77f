/**
 * Finding the manifest files of a tree: what reading its root gave (missing, unreadable, a
 * directory, a single file) and the manifest files under it. Used alike by `apply`/`plan`
 * (loadManifestDir) and `run` (FileSource), so both see the same tree the same way.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { SourceProblem } from '../../contracts/source.js';
import { isIgnoredName, isManifestPath } from './ignore.js';
import type { RootState } from './completeness.js';
import { listContained, OUTSIDE_MESSAGE, statContained } from './contained.js';
import { settled, stampOf, type FileStamp } from '../../util/stat-cache.js';

export const MAX_DEPTH = 32;

export const NOT_UTF8_MESSAGE = 'the name is not valid UTF-8: not read (rename it)';

/** A file name's bytes, printable ASCII as it is and every other byte as \xNN. */
function escapeNameBytes(name: Buffer): string {
  return [...name].map((b) => (b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`)).join('');
}

/**
 * Lists manifest files under dir (sorted), skipping ignored names and symlink loops. A symlink
 * resolving outside dir is refused (a problem of its path) without being followed: see contained.ts.
 */
export async function listManifestFiles(
  dir: string,
): Promise<{ files: string[]; problems: SourceProblem[]; warnings: SourceProblem[]; rootReal: string; dirs: Map<string, DirStamp>; links: number }> {
  let rootReal = path.resolve(dir);
  try {
    rootReal = await fs.realpath(dir);
  } catch {
    // reported by walk()
  }
  const files: string[] = [];
  const problems: SourceProblem[] = [];
  const warnings: SourceProblem[] = [];
  const seen = new Set<string>();
  const dirs = new Map<string, DirStamp>();
  let links = 0;
  async function walk(d: string, depth: number): Promise<void> {
    const listed = await listContained(d, rootReal);
    if (!listed.ok) {
      problems.push({ origin: d, kind: 'unreadable', keys: [], message: listed.message });
      return;
    }
    if (seen.has(listed.real)) {
      problems.push({ origin: d, kind: 'unreadable', keys: [], message: 'symlink loop: directory already read, skipped' });
      return;
    }
    if (depth > MAX_DEPTH) {
      problems.push({ origin: d, kind: 'unreadable', keys: [], message: `nested more than ${MAX_DEPTH} directories deep, skipped` });
      return;
    }
    seen.add(listed.real);
    dirs.set(d, { stamp: stampOf(listed.st), settled: settled(listed.st, Date.now()) });
    const raw = listed.entries;
    const entries = [];
    for (const e of raw) {
      const name = e.name.toString('utf8');
      if (Buffer.from(name, 'utf8').equals(e.name)) entries.push(Object.assign(e, { name }));
      // A name that is not UTF-8 cannot be a key, an origin in status or a path Node opens as a
      // string: it is a problem of the tree (so nothing is destroyed for what it might hold), named
      // with its bytes escaped.
      else if (!isIgnoredName(name)) problems.push({ origin: path.join(d, escapeNameBytes(e.name)), kind: 'unreadable', keys: [], message: NOT_UTF8_MESSAGE });
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of entries) {
      if (isIgnoredName(e.name)) continue;
      const p = path.join(d, e.name);
      let isDir = e.isDirectory();
      let isFile = e.isFile();
      if (e.isSymbolicLink()) {
        links++;
        // Resolved and checked on what it leads to as opened, before it is stat()ed or read.
        const target = statContained(p, rootReal);
        if (!target.ok && target.message === OUTSIDE_MESSAGE) {
          if (isManifestPath(p) || !/\.[^/]*$/.test(e.name)) problems.push({ origin: p, kind: 'unreadable', keys: [], message: OUTSIDE_MESSAGE });
          continue;
        }
        if (!target.ok) {
          problems.push({ origin: p, kind: 'unreadable', keys: [], message: 'broken symlink, skipped' });
          continue;
        }
        isDir = target.st.isDirectory();
        isFile = target.st.isFile();
      }
      if (isDir) await walk(p, depth + 1);
      else if (isFile && isManifestPath(p)) files.push(p);
      else if (!isFile && isManifestPath(p))
        warnings.push({ origin: p, kind: 'skipped', keys: [], message: 'not a regular file (a FIFO, socket or device): skipped' });
    }
  }
  await walk(dir, 0);
  return { files, problems, warnings, rootReal, dirs, links };
}

/** What reading a manifest root gave. */
export interface TreeListing {
  rootState: RootState;
  /** The root, resolved: files are read only from inside it (LoadOptions.within). */
  rootReal: string;
  files: string[];
  /** Directories that could not be read (the root's own failure included). */
  problems: SourceProblem[];
  /** Special files with a manifest name, skipped. */
  warnings: SourceProblem[];
  /** Each directory listed, by the path it was walked by, with its stamp as listed (tree-stamps.ts). */
  dirs: Map<string, DirStamp>;
  /** Symlinks followed in the tree (tree-stamps.ts: a stat by path cannot tell where one leads now). */
  links: number;
}

/** A directory's stamp when listed; `settled`: old enough then for the stamp to tell its entries (util/stat-cache.ts). */
export interface DirStamp {
  stamp: FileStamp;
  settled: boolean;
}

/** Stats root and lists its manifest files; a root that is a file is its only manifest file. */
export async function readManifestTree(root: string): Promise<TreeListing> {
  let st;
  try {
    st = await fs.stat(root);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const rootState: RootState = code === 'ENOENT' ? { kind: 'missing' } : { kind: 'unreadable', detail: code ?? (err as Error).message };
    return {
      rootState,
      rootReal: path.resolve(root),
      files: [],
      problems: [{ origin: root, kind: 'unreadable', keys: [], message: `manifest directory ${root} cannot be read: ${code ?? (err as Error).message}` }],
      warnings: [],
      dirs: new Map(),
      links: 0,
    };
  }
  // A root that is a file is read wherever it points: the user named it.
  if (!st.isDirectory())
    return { rootState: { kind: 'ok' }, rootReal: await fs.realpath(root), files: [root], problems: [], warnings: [], dirs: new Map(), links: 0 };
  const listed = await listManifestFiles(root);
  const rootProblem = listed.problems.find((p) => p.origin === root);
  const rootState: RootState = rootProblem
    ? { kind: 'unreadable', detail: rootProblem.message.replace(/^cannot (read directory|resolve): /, '') }
    : { kind: 'ok' };
  return { rootState, ...listed };
}
