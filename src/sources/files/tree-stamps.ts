/**
 * Whether a manifest tree is still as its last full read left it, told by stamps alone (a stat
 * per directory and per file, no open, no read): what `acetate plan` asks of the loop needs the
 * files as they are now (cli/loop-planner.ts), and a full re-read of 2,500 manifests through their
 * containment checks was 25-50 ms of the loop's thread per ask.
 *
 * A directory's mtime and ctime change when an entry is added to it, removed or renamed, and a
 * kept manifest's stamp (device, inode, size, mtime, ctime) tells its content (util/stat-cache.ts:
 * only one settled when read is kept), when the result kept with it is the one the caller holds.
 * So a tree whose listed directories and kept files all have the stamps they had holds the same
 * names and the same bytes: a file swapped for a symlink, a
 * directory for a link elsewhere, or a file system mounted over either changes a stamp on the way.
 * Anything the stamps cannot vouch for (a directory still young when listed, a file not kept,
 * one whose result checked the node's addresses, a problem or warning of the listing, a symlink
 * in the tree, a root that now resolves elsewhere) says "changed", and the caller reads the tree
 * again as before, with its containment checks (contained.ts).
 */
import { statSync } from 'node:fs';
import { sameStamp } from '../../util/stat-cache.js';
import { realRoot } from './contained.js';
import type { DirStamp, TreeListing } from './read-tree.js';
import type { FileResult } from './manifest-file.js';

export interface LastRead {
  root: string;
  rootReal: string;
  rootOk: boolean;
  dirs: ReadonlyMap<string, DirStamp>;
  files: readonly string[];
  /** Problems and warnings of the listing itself (unreadable dirs, links outside, FIFOs). */
  listingIssues: number;
  /** Symlinks followed: one re-pointed inside an ignored dot-directory changes no listed directory. */
  links: number;
}

export function lastReadOf(root: string, listed: TreeListing): LastRead {
  return {
    root,
    rootReal: listed.rootReal,
    rootOk: listed.rootState.kind === 'ok',
    dirs: listed.dirs,
    files: listed.files,
    listingIssues: listed.problems.length + listed.warnings.length,
    links: listed.links,
  };
}

export function unchangedSinceRead(
  read: LastRead,
  cache: { isCurrent(file: string, result: FileResult | undefined): boolean },
  resultOf: (file: string) => FileResult | undefined,
): boolean {
  if (!read.rootOk || read.listingIssues > 0 || read.links > 0 || read.dirs.size === 0) return false;
  if (realRoot(read.root) !== read.rootReal) return false;
  for (const [dir, d] of read.dirs) {
    if (!d.settled) return false;
    const st = statSync(dir, { throwIfNoEntry: false });
    if (!st || !sameStamp(d.stamp, st)) return false;
  }
  for (const file of read.files) if (!cache.isCurrent(file, resultOf(file))) return false;
  return true;
}
